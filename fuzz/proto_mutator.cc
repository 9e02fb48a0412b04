// MutateMessage: the field choices and edge values of proto_mutator.h.
#include "fuzz/proto_mutator.h"

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "google/protobuf/descriptor.h"

namespace surge::fuzz {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kMaxDepth = 4;

template <typename T>
T Pick(std::minstd_rand& rng, std::initializer_list<T> values) {
  return values.begin()[rng() % values.size()];
}

double EdgeDouble(std::minstd_rand& rng, double v) {
  switch (rng() % 3) {
    case 0:
      return Pick<double>(rng, {NAN, -NAN, HUGE_VAL, -HUGE_VAL, 0.0, -0.0, 1.0, -1.0, DBL_MAX,
                                -DBL_MAX, DBL_MIN, std::numeric_limits<double>::denorm_min(),
                                1e-300, 1e300, 0.5, 1.0 - DBL_EPSILON});
    case 1:
      return Pick<double>(rng, {-v, 2 * v, 0.5 * v, std::nextafter(v, HUGE_VAL),
                                std::nextafter(v, -HUGE_VAL), v * 1e10, v * 1e-10});
    default:
      return std::ldexp(static_cast<double>(rng() % 2000) - 1000.0,
                        static_cast<int>(rng() % 64) - 40);
  }
}

// v + d and -v with wrap-around (no signed overflow).
int64_t Wrap(int64_t v, int64_t d) {
  return static_cast<int64_t>(static_cast<uint64_t>(v) + static_cast<uint64_t>(d));
}

int64_t EdgeInt(std::minstd_rand& rng, int64_t v, int64_t lo, int64_t hi) {
  const int64_t neg = static_cast<int64_t>(0 - static_cast<uint64_t>(v));
  const int64_t x = Pick<int64_t>(
      rng, {0, -1, 1, lo, hi, Wrap(v, 1), Wrap(v, -1), neg, 63, 64, 65, 127, 128, 129, 100000,
            100001, 1 << 20, static_cast<int64_t>(rng() % 1000)});
  return x < lo ? lo : (x > hi ? hi : x);
}

std::string EdgeString(std::minstd_rand& rng, const std::string& v) {
  switch (rng() % 14) {
    case 0: return "";
    case 1: return "a";
    case 2: return std::string(128, 'n');
    case 3: return std::string(129, 'n');
    case 4: return std::string(4096, 'd');
    case 5: return std::string(4097, 'd');
    case 6: return Pick<std::string>(rng, {".run", "-run", "_run", "run one", "run/1", "run,1"});
    case 7: return v + "\xff";                   // invalid UTF-8
    case 8: return v + "\xc3\x28";               // invalid UTF-8 sequence
    case 9: return v + "\xe2\x80\xae";           // a bidi override (valid UTF-8)
    case 10: return v + std::string(1, '\0');
    case 11: return v + static_cast<char>('0' + rng() % 75);
    case 12: return v.empty() ? v : v.substr(0, rng() % v.size());
    default: return std::string(65 + rng() % 200, 'x');
  }
}

// Sets a singular scalar field, or element `index` of a repeated one (-1: add one).
void SetScalar(Message* m, const FieldDescriptor* f, int index, std::minstd_rand& rng) {
  const Reflection* r = m->GetReflection();
  const bool rep = f->is_repeated();
  const bool add = rep && index < 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v = add ? 0 : (rep ? r->GetRepeatedDouble(*m, f, index) : r->GetDouble(*m, f));
      v = EdgeDouble(rng, v);
      add ? r->AddDouble(m, f, v) : rep ? r->SetRepeatedDouble(m, f, index, v) : r->SetDouble(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      float v = add ? 0 : (rep ? r->GetRepeatedFloat(*m, f, index) : r->GetFloat(*m, f));
      const double d = EdgeDouble(rng, v);  // out of float range: +-inf, not UB
      v = std::isnan(d) ? NAN : d > FLT_MAX ? HUGE_VALF : d < -FLT_MAX ? -HUGE_VALF : static_cast<float>(d);
      add ? r->AddFloat(m, f, v) : rep ? r->SetRepeatedFloat(m, f, index, v) : r->SetFloat(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v = add ? 0 : (rep ? r->GetRepeatedInt32(*m, f, index) : r->GetInt32(*m, f));
      v = static_cast<int32_t>(EdgeInt(rng, v, INT32_MIN, INT32_MAX));
      add ? r->AddInt32(m, f, v) : rep ? r->SetRepeatedInt32(m, f, index, v) : r->SetInt32(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v = add ? 0 : (rep ? r->GetRepeatedInt64(*m, f, index) : r->GetInt64(*m, f));
      v = EdgeInt(rng, v / 2, INT64_MIN, INT64_MAX);
      add ? r->AddInt64(m, f, v) : rep ? r->SetRepeatedInt64(m, f, index, v) : r->SetInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v = add ? 0 : (rep ? r->GetRepeatedUInt32(*m, f, index) : r->GetUInt32(*m, f));
      v = static_cast<uint32_t>(EdgeInt(rng, v, 0, UINT32_MAX));
      add ? r->AddUInt32(m, f, v) : rep ? r->SetRepeatedUInt32(m, f, index, v) : r->SetUInt32(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v = add ? 0 : (rep ? r->GetRepeatedUInt64(*m, f, index) : r->GetUInt64(*m, f));
      v = rng() % 4 == 0 ? UINT64_MAX : static_cast<uint64_t>(EdgeInt(rng, v / 2, 0, INT64_MAX));
      add ? r->AddUInt64(m, f, v) : rep ? r->SetRepeatedUInt64(m, f, index, v) : r->SetUInt64(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v = add ? false : (rep ? r->GetRepeatedBool(*m, f, index) : r->GetBool(*m, f));
      add ? r->AddBool(m, f, !v) : rep ? r->SetRepeatedBool(m, f, index, !v) : r->SetBool(m, f, !v);
      break;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type();
      int v = rng() % 3 == 0 ? Pick<int>(rng, {-1, 99, INT32_MAX})
                             : e->value(static_cast<int>(rng() % e->value_count()))->number();
      add ? r->AddEnumValue(m, f, v)
          : rep ? r->SetRepeatedEnumValue(m, f, index, v) : r->SetEnumValue(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v = add ? "" : (rep ? r->GetRepeatedString(*m, f, index) : r->GetString(*m, f));
      v = EdgeString(rng, v);
      add ? r->AddString(m, f, v) : rep ? r->SetRepeatedString(m, f, index, v) : r->SetString(m, f, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
}

void Mutate(Message* m, std::minstd_rand& rng, int depth) {
  const Descriptor* d = m->GetDescriptor();
  const Reflection* r = m->GetReflection();
  if (d->field_count() == 0) return;
  const FieldDescriptor* f = d->field(static_cast<int>(rng() % d->field_count()));
  const bool is_message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (f->is_repeated()) {
    const int n = r->FieldSize(*m, f);
    switch (rng() % 4) {
      case 0:  // shrink
        if (n > 0) r->RemoveLast(m, f);
        return;
      case 1:  // grow by a copy (messages) or an edge value (scalars)
        if (is_message) {
          Message* added = r->AddMessage(m, f);
          if (n > 0) added->CopyFrom(r->GetRepeatedMessage(*m, f, static_cast<int>(rng() % n)));
        } else {
          SetScalar(m, f, -1, rng);
        }
        return;
      default:  // mutate one element
        if (n == 0) return;
        const int i = static_cast<int>(rng() % n);
        if (!is_message) return SetScalar(m, f, i, rng);
        if (depth < kMaxDepth) Mutate(r->MutableRepeatedMessage(m, f, i), rng, depth + 1);
        return;
    }
  }
  if (rng() % 8 == 0 && (is_message || f->has_presence())) return r->ClearField(m, f);
  if (!is_message) return SetScalar(m, f, 0, rng);
  if (depth < kMaxDepth) Mutate(r->MutableMessage(m, f), rng, depth + 1);
}

}  // namespace

void MutateMessage(google::protobuf::Message* message, std::minstd_rand& rng) {
  Mutate(message, rng, 0);
}

}  // namespace surge::fuzz
