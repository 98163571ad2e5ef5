// Facts (invalid-UTF-8 handling, the whitespace set, GPT-2's byte map, how llama.cpp's hand-written
// GPT-2 / Llama-3 / Qwen2 splitters and its std::regex over collapsed text resolve the regexes)
// read from llama.cpp's src/unicode.cpp; code our own.
#include "unicode.hpp"

#include <algorithm>
#include <array>

namespace edgellm::unicode {

size_t sequence_length(uint8_t lead) {
  static constexpr uint8_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLength[lead >> 4];
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  auto cont = [&](size_t i) { return i < s.size() && (uint8_t(s[i]) & 0xC0) == 0x80; };
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = uint8_t(s[i]);
    if (b < 0x80) {
      out.push_back(b);
      i += 1;
    } else if ((b & 0xE0) == 0xC0 && cont(i + 1)) {
      out.push_back(uint32_t(b & 0x1F) << 6 | (uint8_t(s[i + 1]) & 0x3F));
      i += 2;
    } else if ((b & 0xF0) == 0xE0 && cont(i + 1) && cont(i + 2)) {
      out.push_back(uint32_t(b & 0x0F) << 12 | uint32_t(uint8_t(s[i + 1]) & 0x3F) << 6 |
                    (uint8_t(s[i + 2]) & 0x3F));
      i += 3;
    } else if ((b & 0xF8) == 0xF0 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const uint32_t cp = uint32_t(b & 0x07) << 18 | uint32_t(uint8_t(s[i + 1]) & 0x3F) << 12 |
                          uint32_t(uint8_t(s[i + 2]) & 0x3F) << 6 | (uint8_t(s[i + 3]) & 0x3F);
      out.push_back(cp <= 0x10FFFF ? cp : 0xFFFD);
      i += 4;
    } else {
      out.push_back(0xFFFD);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF) cp = 0xFFFD;
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

Category category(uint32_t cp) {
  const CategoryRange* end = kCategoryRanges + kCategoryRangeCount;
  const CategoryRange* it = std::upper_bound(
      kCategoryRanges, end, cp, [](uint32_t c, const CategoryRange& r) { return c < r.start; });
  return it == kCategoryRanges ? Category::Other : (it - 1)->category;
}

bool is_whitespace(uint32_t cp) {
  static constexpr uint32_t kSpaces[] = {0x09,   0x0A,   0x0B,   0x0C,   0x0D,   0x20,   0x85,
                                         0xA0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
                                         0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028,
                                         0x2029, 0x202F, 0x205F, 0x3000};
  return std::binary_search(std::begin(kSpaces), std::end(kSpaces), cp);
}

namespace {

struct Gpt2Map {
  std::array<std::string, 256> to_char;
  std::array<uint32_t, 256> cp;
  Gpt2Map() {
    int moved = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      cp[b] = printable ? uint32_t(b) : uint32_t(256 + moved++);
      append_utf8(to_char[b], cp[b]);
    }
  }
};

const Gpt2Map& gpt2_map() {
  static const Gpt2Map map;
  return map;
}

}  // namespace

const std::string& byte_to_gpt2(uint8_t byte) { return gpt2_map().to_char[byte]; }

int gpt2_to_byte(uint32_t cp) {
  if (cp < 256) {
    const auto& m = gpt2_map();
    return m.cp[cp] == cp ? int(cp) : -1;
  }
  if (cp < 256 + 68) {
    const auto& m = gpt2_map();
    for (int b = 0; b < 256; ++b)
      if (m.cp[b] == cp) return b;
  }
  return -1;
}

namespace {

// One piece of text as a splitter sees it: positions past its end have no class, as at the end
// of the piece llama.cpp's splitters work on.
struct Piece {
  const uint32_t* c;
  size_t n;
  uint32_t at(size_t i) const { return i < n ? c[i] : 0xFFFFFFFFu; }
  bool letter(size_t i) const { return i < n && category(c[i]) == Category::Letter; }
  bool number(size_t i) const { return i < n && category(c[i]) == Category::Number; }
  bool space(size_t i) const { return i < n && is_whitespace(c[i]); }
  bool newline(size_t i) const { return i < n && (c[i] == '\r' || c[i] == '\n'); }
  bool other(size_t i) const { return i < n && !space(i) && !letter(i) && !number(i); }
};

// Length of 's 't 're 've 'm 'll 'd at i (each ASCII letter in either case when icase), or 0.
size_t contraction(const Piece& p, size_t i, bool icase) {
  if (p.at(i) != '\'') return 0;
  auto low = [&](size_t k) {
    const uint32_t x = p.at(k);
    return icase && x >= 'A' && x <= 'Z' ? x + 32 : x;
  };
  const uint32_t c1 = low(i + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  const uint32_t c2 = low(i + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// Appends word lengths; `pos` is where the next word starts.
struct Words {
  std::vector<size_t>& out;
  size_t pos = 0;
  void to(size_t end) {
    if (end > pos) out.push_back(end - pos);
    pos = end;
  }
};

// The whitespace alternatives every regex here ends with: \s*[\r\n]+ (up to the last newline of
// the run), else \s+(?!\S) (all but the last space before a non-space), else \s+; a position no
// alternative matches is a word of one.
void whitespace_word(const Piece& p, Words& w) {
  size_t end = w.pos;
  size_t after_last_newline = 0;
  while (p.space(end)) {
    if (p.newline(end)) after_last_newline = end + 1;
    ++end;
  }
  if (after_last_newline > 0) w.to(after_last_newline);
  else if (end - w.pos > 1 && end < p.n) w.to(end - 1);
  else if (end > w.pos) w.to(end);
  else w.to(w.pos + 1);
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)  (no \s*[\r\n]+ here)
void split_gpt2(const Piece& p, std::vector<size_t>& out) {
  Words w{out};
  while (w.pos < p.n) {
    const size_t pos = w.pos;
    if (const size_t k = contraction(p, pos, /*icase=*/false)) {
      w.to(pos + k);
      continue;
    }
    const size_t s = p.at(pos) == ' ' ? pos + 1 : pos;  // after the optional space
    size_t end = s;
    if (p.letter(s)) {
      while (p.letter(end)) ++end;
    } else if (p.number(s)) {
      while (p.number(end)) ++end;
    } else if (p.other(s)) {
      while (p.other(end)) ++end;
    } else {
      size_t e = pos;
      while (p.space(e)) ++e;
      if (e - pos > 1 && e < p.n) w.to(e - 1);
      else w.to(e > pos ? e : pos + 1);
      continue;
    }
    w.to(end);
  }
}

// Llama3 (max_digits 3) and Qwen2 (max_digits 1).
void split_llama3(const Piece& p, size_t max_digits, std::vector<size_t>& out) {
  Words w{out};
  while (w.pos < p.n) {
    const size_t pos = w.pos;
    const uint32_t c = p.at(pos);
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (const size_t k = contraction(p, pos, /*icase=*/true)) {
      w.to(pos + k);
      continue;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!p.newline(pos) && !p.number(pos) && (p.letter(pos) || p.letter(pos + 1))) {
      size_t end = pos + 1;
      while (p.letter(end)) ++end;
      w.to(end);
      continue;
    }
    // \p{N}{1,3} or \p{N}
    if (p.number(pos)) {
      size_t end = pos;
      while (p.number(end) && end - pos < max_digits) ++end;
      w.to(end);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*  (past the end of the piece counts as "not other")
    const size_t first = c == ' ' ? pos + 1 : pos;
    if (p.other(first) || (c == ' ' && first == p.n)) {
      size_t end = first;
      while (p.other(end)) ++end;
      while (p.newline(end)) ++end;
      w.to(end);
      continue;
    }
    whitespace_word(p, w);
  }
}

// llama.cpp runs GPT-4o's and Tekken's regexes with std::regex (ECMAScript: the first
// alternative that matches, quantifiers greedy with backtracking) over text in which each
// non-ASCII letter is one and the same character; the lookahead classes "(?=\p{L})[^a-z]" and
// "(?=\p{L})[^A-Z]" therefore mean "a letter but not a-z" (upper) and "a letter but not A-Z"
// (lower). Marks are neither letters nor numbers there.
void split_gpt4o(const Piece& p, bool tekken, std::vector<size_t>& out) {
  auto ascii = [&](size_t i, char lo, char hi) { return p.at(i) >= uint32_t(lo) && p.at(i) <= uint32_t(hi); };
  auto upper = [&](size_t i) { return p.letter(i) && !ascii(i, 'a', 'z'); };
  auto lower = [&](size_t i) { return p.letter(i) && !ascii(i, 'A', 'Z'); };
  auto prefix = [&](size_t i) { return i < p.n && !p.newline(i) && !p.letter(i) && !p.number(i); };
  Words w{out};
  while (w.pos < p.n) {
    const size_t pos = w.pos;
    // [^\r\n\p{L}\p{N}]?Upper*Lower+C?  |  [^\r\n\p{L}\p{N}]?Upper+Lower*C?
    // Without the optional prefix character these can only match at a letter, so taking it
    // whenever it is there is the only way either can match.
    const size_t s = prefix(pos) ? pos + 1 : pos;
    if (p.letter(s)) {
      size_t m = s;
      while (upper(m)) ++m;
      // Upper* gives back characters until Lower+ can start: the last position <= m that is
      // lower. None: the run is A-Z only and the second alternative takes all of it.
      size_t end = m;
      for (size_t k = m + 1; k > s; --k) {
        if (lower(k - 1)) {
          end = k - 1;
          while (lower(end)) ++end;
          break;
        }
      }
      if (!tekken) end += contraction(p, end, /*icase=*/true);
      w.to(end);
      continue;
    }
    // \p{N}{1,3} (Tekken: \p{N})
    if (p.number(pos)) {
      size_t end = pos;
      while (p.number(end) && end - pos < (tekken ? 1u : 3u)) ++end;
      w.to(end);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n/]*
    const size_t first = p.at(pos) == ' ' && p.other(pos + 1) ? pos + 1 : pos;
    if (p.other(first)) {
      size_t end = first;
      while (p.other(end)) ++end;
      while (p.newline(end) || p.at(end) == '/') ++end;
      w.to(end);
      continue;
    }
    whitespace_word(p, w);
  }
}

}  // namespace

std::vector<size_t> pre_split(PreSplit kind, const std::vector<uint32_t>& cpts) {
  std::vector<size_t> words;
  const Piece all{cpts.data(), cpts.size()};
  switch (kind) {
    case PreSplit::Gpt2: split_gpt2(all, words); break;
    case PreSplit::DigitsThenGpt2:
      // \p{N} first: each digit is a piece, and so is each run between them.
      for (size_t pos = 0; pos < cpts.size();) {
        if (all.number(pos)) {
          words.push_back(1);
          ++pos;
          continue;
        }
        size_t end = pos;
        while (end < cpts.size() && !all.number(end)) ++end;
        split_gpt2(Piece{cpts.data() + pos, end - pos}, words);
        pos = end;
      }
      break;
    case PreSplit::Llama3: split_llama3(all, 3, words); break;
    case PreSplit::Qwen2: split_llama3(all, 1, words); break;
    case PreSplit::Gpt4o: split_gpt4o(all, /*tekken=*/false, words); break;
    case PreSplit::Tekken: split_gpt4o(all, /*tekken=*/true, words); break;
  }
  return words;
}

}  // namespace edgellm::unicode
