/* sk_lookup dispatch: a TCP connection to a served local address:port goes to the
 * listening socket in that entry's sockmap slot, whatever address the socket is
 * bound to, so a site may serve addresses configured on no interface (routed to
 * the box as local) and the engine needs no socket per address. */
#ifndef ZS_DISPATCH_H
#define ZS_DISPATCH_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/in.h>

#include "maps.h"
#include "parse.h"

#define ZS_AF_INET 2
#define ZS_AF_INET6 10

static __always_inline int zs_dispatch_lookup(struct bpf_sk_lookup *ctx)
{
	struct zs_local_key key = {};
	struct bpf_sock *sk;
	__u16 port;
	__u32 *slot;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	port = zs_htons((__u16)ctx->local_port); /* the context has it in host order */
	__builtin_memcpy(key.port, &port, sizeof(key.port));
	if (ctx->family == ZS_AF_INET) {
		__u32 addr = ctx->local_ip4;

		key.family = 4;
		__builtin_memcpy(key.addr, &addr, 4);
	} else if (ctx->family == ZS_AF_INET6) {
		__u32 addr[4] = { ctx->local_ip6[0], ctx->local_ip6[1], ctx->local_ip6[2],
				  ctx->local_ip6[3] };

		key.family = 6;
		__builtin_memcpy(key.addr, addr, 16);
	} else {
		return SK_PASS;
	}
	slot = zs_dispatch.lookup(&key);
	if (!slot) {
		__builtin_memset(key.addr, 0, sizeof(key.addr)); /* the port on every address */
		slot = zs_dispatch.lookup(&key);
	}
	if (!slot)
		return SK_PASS;
	sk = zs_socks.lookup(slot);
	if (!sk)
		return SK_PASS; /* the listener is gone: let the stack answer as usual */
	/* A failed assign (e.g. a v6-only socket for IPv4) leaves the usual lookup. */
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}

#endif
