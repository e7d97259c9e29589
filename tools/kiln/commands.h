// The `kiln` command line: one file per subcommand. Each Add*Command registers its options on
// the CLI11 app and returns the subcommand plus the action to run when it was selected.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "core/status.h"
#include "runtime/session.h"

namespace kiln::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<Status()> action;  // its Status becomes the one-line error and exit status 1
};

Command AddRunCommand(CLI::App& app);
Command AddInspectCommand(CLI::App& app);
Command AddConvertCommand(CLI::App& app);
Command AddCompareCommand(CLI::App& app);
Command AddBenchCommand(CLI::App& app);
Command AddPlanCommand(CLI::App& app);
Command AddQuantizeCommand(CLI::App& app);
Command AddPackCommand(CLI::App& app);
Command AddCompileCommand(CLI::App& app);
// The package part of `kiln inspect` (package_cmds.cc).
Status InspectPackage(const std::string& dir, const SessionOptions& options);

}  // namespace kiln::cli
