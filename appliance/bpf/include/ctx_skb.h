/* The TC face of the hook-independent helpers: context type, packet bounds and
 * verdict names, as ctx_xdp.h gives them for XDP. */
#ifndef ZS_CTX_SKB_H
#define ZS_CTX_SKB_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>

#define ZS_CTX struct __sk_buff
#define ZS_VERDICT_PASS TC_ACT_OK
#define ZS_VERDICT_DROP TC_ACT_SHOT

static __always_inline void *zs_data(ZS_CTX *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *zs_data_end(ZS_CTX *ctx)
{
	return (void *)(long)ctx->data_end;
}

#endif
