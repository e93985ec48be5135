/* The edge filter shared by the early hooks: parse to L3, look the source up in
 * the deny rules, count, and leave through one exit. Needs a ctx_*.h first. */
#ifndef ZS_EDGE_H
#define ZS_EDGE_H

#include "deny.h"
#include "parse.h"
#include "stats.h"

static __always_inline int zs_edge(ZS_CTX *ctx)
{
	void *data = zs_data(ctx);
	void *data_end = zs_data_end(ctx);
	struct zs_cursor cur = { .pos = data };
	__u32 reason = ZS_REASON_PASS;
	__u32 rule = ZS_RULE_NONE;
	int proto;

	proto = zs_parse_eth(&cur, data_end);
	if (proto < 0) {
		reason = ZS_REASON_MALFORMED;
		goto out;
	}
	if (proto == zs_htons(ETH_P_IP)) {
		struct iphdr *ip;

		if (zs_parse_ipv4(&cur, data_end, &ip) < 0) {
			reason = ZS_REASON_MALFORMED;
			goto out;
		}
#ifdef ZS_FEATURE_DENY_V4
		rule = zs_deny_v4(ip);
#endif
	} else if (proto == zs_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;

		if (zs_parse_ipv6(&cur, data_end, &ip6) < 0) {
			reason = ZS_REASON_MALFORMED;
			goto out;
		}
#ifdef ZS_FEATURE_DENY_V6
		rule = zs_deny_v6(ip6);
#endif
	}
	if (rule != ZS_RULE_NONE)
		reason = ZS_REASON_DENY;
out:
	zs_count_verdict(reason, rule, data_end - data);
	/* Malformed packets go to the stack, which drops them with its own counters. */
	return reason == ZS_REASON_DENY ? ZS_VERDICT_DROP : ZS_VERDICT_PASS;
}

#endif
