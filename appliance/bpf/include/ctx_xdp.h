/* The XDP face of the hook-independent helpers: context type, packet bounds and
 * verdict names. A TC entry would include a ctx_skb.h with the same names. */
#ifndef ZS_CTX_XDP_H
#define ZS_CTX_XDP_H

#include <uapi/linux/bpf.h>

#define ZS_CTX struct xdp_md
#define ZS_VERDICT_PASS XDP_PASS
#define ZS_VERDICT_DROP XDP_DROP

static __always_inline void *zs_data(ZS_CTX *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *zs_data_end(ZS_CTX *ctx)
{
	return (void *)(long)ctx->data_end;
}

#endif
