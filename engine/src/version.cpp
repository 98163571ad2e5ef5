// Library version, for the tools' --version and the C API.
namespace edgellm {
const char* version_string() { return "0.1.0"; }
}  // namespace edgellm
