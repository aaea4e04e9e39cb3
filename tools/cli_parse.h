#pragma once

// Command-line parsing shared by cachefs and cachefsctl: help and version print and exit 0,
// any other parse error is one line on stderr and the usage exit code 2.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>

namespace cachefs::tools {

// Runs `parse()` (a call of app.parse). Returns the exit code when the process should stop
// here, nothing when parsing succeeded.
template <typename Parse>
std::optional<int> ParseCommandLine(CLI::App& app, const char* program, Parse parse) {
  try {
    parse();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see %s --help)\n", program, e.what(), program);
    return 2;
  }
  return std::nullopt;
}

}  // namespace cachefs::tools
