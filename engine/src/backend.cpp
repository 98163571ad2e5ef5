// The one place that maps a backend name to a backend (see backend.hpp). A new backend adds its
// name here, behind its build option.
#include "backend.hpp"

#include <string>

#include "arch.hpp"  // printable()
#include "backend_cpu.hpp"
#include "error.hpp"

namespace edgellm::engine {

std::unique_ptr<Backend> make_backend(std::string_view name, const BackendOptions& options) {
  if (name == "cpu" || name == "auto") return std::make_unique<CpuBackend>(options);
  throw Error(Error::Kind::InvalidArgument,
              "context: unknown backend '" + printable(name) + "' (this build has: " + backend_names() + ")");
}

std::string backend_names() { return "auto, cpu"; }

}  // namespace edgellm::engine
