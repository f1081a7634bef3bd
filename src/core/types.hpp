// Domain value types shared by every module. Pure data, no I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace opensense {

using OrgId = std::int64_t;
using SiteId = std::int64_t;
using DeviceId = std::int64_t;
// Milliseconds since the Unix epoch, UTC.
using TimestampMs = std::int64_t;

inline constexpr TimestampMs kMsPerSecond = 1000;
inline constexpr TimestampMs kMsPerMinute = 60 * kMsPerSecond;
inline constexpr TimestampMs kMsPerHour = 60 * kMsPerMinute;
inline constexpr TimestampMs kMsPerDay = 24 * kMsPerHour;

enum class Tier { kFree, kTeam, kEnterprise };
std::string_view TierName(Tier tier);
Result<Tier> ParseTier(std::string_view name);

struct Organization {
  OrgId id = 0;
  std::string name;
  std::string time_zone = "UTC";  // IANA name; 1-day rollups follow its calendar days
  Tier tier = Tier::kFree;
  TimestampMs created_at = 0;
  bool operator==(const Organization&) const = default;
};

struct Site {
  SiteId id = 0;
  OrgId org_id = 0;
  std::string name;
  // A gateway token of this site may register a device it names for the first time.
  bool auto_register = false;
  bool operator==(const Site&) const = default;
};

using UserId = std::int64_t;

enum class Role { kViewer, kMember, kAdmin, kOwner };  // ordered: each includes the ones before
std::string_view RoleName(Role role);
Result<Role> ParseRole(std::string_view name);

struct User {
  UserId id = 0;
  OrgId org_id = 0;
  std::string email;
  Role role = Role::kViewer;
  TimestampMs created_at = 0;
  bool operator==(const User&) const = default;
};

// A bearer credential. Only a bcrypt hash of its secret is stored.
enum class TokenKind { kDevice, kGateway, kUser };  // osd_, osg_, osk_
std::string_view TokenKindName(TokenKind kind);

struct TokenRecord {
  std::int64_t id = 0;
  std::string public_id;  // the <token-id> part: finds the row in O(1)
  TokenKind kind = TokenKind::kDevice;
  OrgId org_id = 0;
  std::optional<DeviceId> device;  // kDevice
  std::optional<SiteId> site;      // kGateway
  std::optional<UserId> user;      // kUser
  Role role = Role::kViewer;       // kUser
  std::string secret_hash;         // bcrypt $2b$
  std::string label;
  TimestampMs created_at = 0;
  std::optional<TimestampMs> expires_at;  // revoked, or rotated with a grace period
  std::optional<TimestampMs> last_used_at;
  bool operator==(const TokenRecord&) const = default;
};

// What compliance reports and alert rules need to know about a device. Every field is optional
// (a device registered without them reports with "not set").
struct DeviceProfile {
  // Target range of the device's temperature (metric "temperature", °C): e.g. 2-8 for a
  // medicine fridge. Either bound may be absent (a freezer has only a maximum).
  std::optional<double> target_min;
  std::optional<double> target_max;
  // How often the device is expected to report, in seconds: a report counts readings
  // received against readings expected, and a longer silence is a gap (offline period).
  std::optional<std::int64_t> expected_interval_s;
  // A medicine store: reports give its mean kinetic temperature.
  bool medicine_storage = false;
  // Calibration certificate: issue date and due date, local calendar dates "YYYY-MM-DD".
  std::optional<std::string> calibration_date;
  std::optional<std::string> calibration_due;
  bool operator==(const DeviceProfile&) const = default;
};

struct Device {
  DeviceId id = 0;
  OrgId org_id = 0;
  std::optional<SiteId> site_id;
  std::string name;
  std::optional<std::string> serial;  // unique within the organisation (MAC, manufacturer id)
  bool decommissioned = false;        // no new readings; history stays for its retention
  TimestampMs created_at = 0;
  DeviceProfile profile;
  bool operator==(const Device&) const = default;
};

// One measurement as it arrives. `unit` empty means "the metric's default unit".
struct Reading {
  DeviceId device = 0;
  std::string metric;
  std::string unit;
  TimestampMs ts = 0;
  double value = 0;
};

enum class RejectReason {
  kNotFinite,             // NaN or infinity
  kInFuture,              // more than 5 minutes ahead of the server clock
  kOlderThanRetention,    // before the organisation's raw-reading retention
  kUnknownDevice,         // no such device in the organisation
  kDeviceDecommissioned,  // the device was deleted; its history stays, new readings do not
  kBadMetricName,         // not 1-64 characters of a-z 0-9 _ . -
  kUnknownUnit,           // not a SenML unit we know
  kUnitMismatch,          // the series already has another unit
};
std::string_view RejectReasonName(RejectReason reason);

struct Rejection {
  std::size_t index = 0;  // position of the record in the submitted batch
  RejectReason reason = RejectReason::kNotFinite;
  std::string message;    // human-readable detail
};

// The fate of every record of one submitted batch: accepted + duplicates + rejected.size() == size.
struct IngestResult {
  std::size_t accepted = 0;
  std::size_t duplicates = 0;  // already stored: a retry is harmless
  std::vector<Rejection> rejected;
};

enum class Resolution { kRaw, k5m, k1h, k1d, kAuto };
std::string_view ResolutionName(Resolution r);
Result<Resolution> ParseResolution(std::string_view name);

// One point of a series answer. Raw points have min == max == v and count == 1;
// rollup points carry the mean as v.
struct SeriesPoint {
  TimestampMs t = 0;
  double v = 0;
  double min = 0;
  double max = 0;
  std::int64_t count = 0;
};

struct SeriesQuery {
  OrgId org = 0;
  DeviceId device = 0;
  std::string metric;
  TimestampMs from = 0;  // inclusive
  TimestampMs to = 0;    // exclusive
  Resolution resolution = Resolution::kAuto;
};

struct SeriesResult {
  DeviceId device = 0;
  std::string metric;
  std::string unit;
  Resolution resolution = Resolution::kRaw;  // the level actually used
  std::vector<SeriesPoint> points;
};

}  // namespace opensense
