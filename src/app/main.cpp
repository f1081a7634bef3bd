#include "app/cli.hpp"

int main(int argc, char** argv) { return opensense::app::RunCli(argc, argv); }
