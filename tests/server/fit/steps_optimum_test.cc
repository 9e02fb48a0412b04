#include "server/fit/steps_optimum.h"
#include "gtest/gtest.h"
TEST(Placeholder, Nothing) {}
