// Frees the SSL object of every TLS connection Sofia-SIP closes.
//
// Sofia-SIP 1.12's tls_free() (tport_tls.c, the version Debian ships) ends a
// connection with SSL_shutdown() and BIO_free() of its socket BIO, and never
// calls SSL_free(): each TLS connection, once closed, left its SSL object and
// buffers behind, about 54 KiB. Anyone who can open TLS connections to the
// SIP port could exhaust memory without authenticating, and phones that
// reconnect leaked it slowly.
//
// This library defines SSL_shutdown. chan_sip links it ahead of Sofia-SIP,
// so Sofia-SIP's calls bind here (the module is loaded RTLD_LOCAL, and a
// dlopen'ed object's own dependency list is searched in order, before the
// libssl Sofia-SIP pulls in); everyone else's calls still reach libssl's, as
// libssl is not in the global scope. Every call is passed on to libssl. When
// the caller is tls_free() itself, the SSL object is then freed, after one
// more reference is taken on its BIO: SSL_set_bio() gave the SSL the BIO
// tls_free() frees right after, and SSL_free() would drop that reference
// too. No other call of Sofia-SIP's is touched (its STUN client, for one,
// frees its own SSL after SSL_shutdown).
//
// It is a library of its own, not part of chan_sip.so, because Sofia-SIP
// stays mapped after chan_sip is unloaded (pin_sofia_library()): the function
// its relocation points at must stay mapped too, so chan_sip pins this
// library as well.
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <dlfcn.h>

#include <cstring>

namespace {

using ShutdownFn = int (*)(SSL*);

ShutdownFn libssl_shutdown() {
    static const ShutdownFn fn = reinterpret_cast<ShutdownFn>(::dlsym(RTLD_NEXT, "SSL_shutdown"));
    return fn;
}

bool called_by_sofia_tls_free(void* return_address) {
    Dl_info info{};
    return ::dladdr(return_address, &info) != 0 && info.dli_sname && info.dli_fname &&
           std::strcmp(info.dli_sname, "tls_free") == 0 && std::strstr(info.dli_fname, "libsofia-sip-ua") != nullptr;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int SSL_shutdown(SSL* ssl) {
    auto real = libssl_shutdown();
    int result = real ? real(ssl) : -1;
    if (ssl && called_by_sofia_tls_free(__builtin_return_address(0))) {
        // tls_free() goes on with BIO_free() of the socket BIO and
        // SSL_CTX_free() of the shared context, references the SSL object
        // holds: SSL_free() drops them too, so each gets one more first.
        if (BIO* bio = SSL_get_rbio(ssl)) BIO_up_ref(bio);
        if (SSL_CTX* ctx = SSL_get_SSL_CTX(ssl)) SSL_CTX_up_ref(ctx);
        SSL_free(ssl);
    }
    return result;
}

// Lets chan_sip find (and pin) this library; a no-op.
extern "C" __attribute__((visibility("default"))) void tandem_sofia_tls_free_linked() {}
