// The doctest runner shared by every unit test file in tests/unit/.
//
// `unit_tests --console-child SOCKET VERBOSITY HISTORY` runs the interactive
// console instead of the tests: test_console.cpp starts it on a pseudo-terminal
// through exec, because a child that only forks a multi-threaded test process
// may find a lock (the allocator's) held by a thread that no longer exists.
#define DOCTEST_CONFIG_IMPLEMENT
#include "console/console.hpp"

#include <doctest/doctest.h>

#include <cstring>

int main(int argc, char** argv) {
    if (argc == 5 && std::strcmp(argv[1], "--console-child") == 0)
        return tandem::cli::run_console(argv[2], argv[3], argv[4]);
    return doctest::Context(argc, argv).run();
}
