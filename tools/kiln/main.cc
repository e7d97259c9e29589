#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"

namespace {
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln: compile and run ONNX models on this device"};
  app.require_subcommand(1);
  std::vector<kiln::cli::Command> commands = {kiln::cli::AddRunCommand(app),
                                              kiln::cli::AddInspectCommand(app),
                                              kiln::cli::AddCompareCommand(app),
                                              kiln::cli::AddConvertCommand(app),
                                              kiln::cli::AddBenchCommand(app), kiln::cli::AddPlanCommand(app),
                                              kiln::cli::AddQuantizeCommand(app),
                                              kiln::cli::AddPackCommand(app),
                                              kiln::cli::AddCompileCommand(app)};
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const auto& c : commands) {
      known |= c.app->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + c.app->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "error: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see kiln --help)\n", OneLine(e.what()).c_str());
    return 1;
  }
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    kiln::Status s = c.action();
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", OneLine(s.message()).c_str());
      return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "error: no command given (see kiln --help)\n");
  return 1;
}
