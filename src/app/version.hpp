#pragma once
namespace opensense::app {
inline constexpr const char* kVersion = "0.1.0";
}
