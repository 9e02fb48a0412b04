// A small structure-aware mutator for protobuf messages (Debian has no
// libprotobuf-mutator): changes one field of a parsed message through
// reflection, so edge values reach the code under test without the wire
// format having to be guessed byte by byte.
//
// One call picks a field at random, descending into sub-messages, and
//   * sets a number to an edge (NaN, +-inf, +-0, +-1, the type's extremes,
//     the limits surge checks: 64, 128, 4096, 100000...) or a neighbour of
//     its value,
//   * sets a string to empty, a 128/129/4096/4097-byte name, a name with a
//     forbidden or leading character, invalid UTF-8, or the value with a
//     byte added or cut,
//   * sets an enum to a declared or an undeclared value, flips a bool,
//   * grows a repeated field by a copy of an element, shrinks it, or
//     mutates one element; sets or clears a sub-message or optional field.
// Not thread-safe (the caller's generator).
#ifndef SURGE_FUZZ_PROTO_MUTATOR_H_
#define SURGE_FUZZ_PROTO_MUTATOR_H_

#include <random>

#include "google/protobuf/message.h"

namespace surge::fuzz {

void MutateMessage(google::protobuf::Message* message, std::minstd_rand& rng);

}  // namespace surge::fuzz

#endif  // SURGE_FUZZ_PROTO_MUTATOR_H_
