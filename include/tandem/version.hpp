// Version and ABI identity of the Tandem SDK.
//
// A module is loaded only if the ABI tag it was compiled with equals the core's
// exactly: the SDK is C++ (classes, std:: types, Boost.Asio coroutines), so a
// different SDK version, compiler major version or Boost version means a
// different binary interface. The loader compares the tags before running any
// module code and asks for a rebuild when they differ.
#pragma once

#include <boost/version.hpp>

#define TANDEM_VERSION_MAJOR 0
#define TANDEM_VERSION_MINOR 1
#define TANDEM_VERSION_PATCH 0
#define TANDEM_VERSION "0.1.0"

// Bumped whenever a public header changes in a way that breaks binaries.
// 6: the event bus gained PeerStatus, Registry and Transfer (a larger Event variant).
// 8: Channel and ChannelRequest carry the call's hop budget (max_forwards).
// 9: AppResult::released (an application handed its channel to another owner).
// 10: channels can move between loops (ChannelDriver::can_move/leave_loop/join_loop,
//     RtpSession::move_to, move_channel, post_to_channel).
#define TANDEM_SDK_REVISION 10

#define TANDEM_STRINGIFY2(x) #x
#define TANDEM_STRINGIFY(x) TANDEM_STRINGIFY2(x)

#if defined(__clang__)
#define TANDEM_COMPILER_TAG "clang" TANDEM_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define TANDEM_COMPILER_TAG "gcc" TANDEM_STRINGIFY(__GNUC__)
#else
#define TANDEM_COMPILER_TAG "cc"
#endif

#define TANDEM_ABI_TAG                                                                          \
    "tandem-sdk-" TANDEM_STRINGIFY(TANDEM_VERSION_MAJOR) "." TANDEM_STRINGIFY(                  \
        TANDEM_VERSION_MINOR) "r" TANDEM_STRINGIFY(TANDEM_SDK_REVISION) "/" TANDEM_COMPILER_TAG \
                                                                        "/boost" BOOST_LIB_VERSION

namespace tandem {
inline constexpr const char* version = TANDEM_VERSION;
inline constexpr const char* abi_tag = TANDEM_ABI_TAG;
}  // namespace tandem
