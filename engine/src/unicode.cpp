// Facts (invalid-UTF-8 handling, the whitespace set, GPT-2's byte map, how llama.cpp's hand-written
// Llama-3 splitter resolves the regex) read from llama.cpp's src/unicode.cpp; code our own.
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

std::vector<size_t> split_llama3(const std::vector<uint32_t>& cpts) {
  const size_t n = cpts.size();
  auto letter = [&](size_t i) { return i < n && category(cpts[i]) == Category::Letter; };
  auto number = [&](size_t i) { return i < n && category(cpts[i]) == Category::Number; };
  auto space = [&](size_t i) { return i < n && is_whitespace(cpts[i]); };
  auto newline = [&](size_t i) { return i < n && (cpts[i] == '\r' || cpts[i] == '\n'); };
  auto lower = [](uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; };

  std::vector<size_t> words;
  size_t pos = 0;
  auto word_to = [&](size_t end) {
    words.push_back(end - pos);
    pos = end;
  };
  while (pos < n) {
    const uint32_t c = cpts[pos];
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c == '\'' && pos + 1 < n) {
      const uint32_t c1 = lower(cpts[pos + 1]);
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        word_to(pos + 2);
        continue;
      }
      if (pos + 2 < n) {
        const uint32_t c2 = lower(cpts[pos + 2]);
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          word_to(pos + 3);
          continue;
        }
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!newline(pos) && !number(pos) && (letter(pos) || letter(pos + 1))) {
      size_t end = pos + 1;
      while (letter(end)) ++end;
      word_to(end);
      continue;
    }
    // \p{N}{1,3}: runs of digits in groups of three
    if (number(pos)) {
      size_t end = pos;
      while (number(end) && end - pos < 3) ++end;
      word_to(end);
      continue;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*  (past the end of the text counts as "not other")
    auto other = [&](size_t i) { return i < n && !space(i) && !letter(i) && !number(i); };
    const size_t first = c == ' ' ? pos + 1 : pos;
    if (other(first) || (c == ' ' && first == n)) {
      size_t end = first;
      while (other(end)) ++end;
      while (newline(end)) ++end;
      word_to(end);
      continue;
    }
    // Whitespace: \s*[\r\n]+ (up to the last newline of the run), else \s+(?!\S) (all but the
    // last space before a non-space), else \s+.
    size_t end = pos;
    size_t after_last_newline = 0;
    while (space(end)) {
      if (newline(end)) after_last_newline = end + 1;
      ++end;
    }
    if (after_last_newline > 0) {
      word_to(after_last_newline);
    } else if (end - pos > 1 && end < n) {
      word_to(end - 1);
    } else if (end > pos) {
      word_to(end);
    } else {
      word_to(pos + 1);
    }
  }
  return words;
}

}  // namespace edgellm::unicode
