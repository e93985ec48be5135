/* The edge filter of the early hook: parse to L4, then deny rules, unserved
 * ports and connection rates, count, and leave through one exit. Needs a
 * ctx_*.h first. */
#ifndef ZS_EDGE_H
#define ZS_EDGE_H

#include "deny.h"
#include "parse.h"
#include "ports.h"
#include "stats.h"

static __always_inline int zs_edge(ZS_CTX *ctx)
{
	void *data = zs_data(ctx);
	void *data_end = zs_data_end(ctx);
	struct zs_cursor cur = { .pos = data };
	struct zs_l4 l4 = {};
	struct zs_rate_key source = {};
	__u32 reason = ZS_REASON_PASS;
	__u32 rule = ZS_RULE_NONE;
	__u64 seen;
	int proto;

	proto = zs_parse_eth(&cur, data_end);
	if (proto < 0) {
		reason = ZS_REASON_MALFORMED;
		goto out;
	}
	if (proto == zs_htons(ETH_P_IP)) {
		struct iphdr *ip;

		proto = zs_parse_ipv4(&cur, data_end, &ip);
		if (proto < 0) {
			reason = ZS_REASON_MALFORMED;
			goto out;
		}
		if (!zs_ipv4_later_fragment(ip))
			zs_parse_l4(&cur, data_end, proto, &l4);
		/* IPv4-mapped, so no IPv6 source shares a bucket with it. */
		source.addr[10] = 0xff;
		source.addr[11] = 0xff;
		__builtin_memcpy(&source.addr[12], &ip->saddr, 4);
#ifdef ZS_FEATURE_DENY_V4
		rule = zs_deny_v4(ip, l4.dport);
#endif
	} else if (proto == zs_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;

		proto = zs_parse_ipv6(&cur, data_end, &ip6);
		if (proto < 0) {
			reason = ZS_REASON_MALFORMED;
			goto out;
		}
		/* Extension headers are not walked: such packets meet only every-port rules. */
		zs_parse_l4(&cur, data_end, proto, &l4);
		__builtin_memcpy(source.addr, &ip6->saddr, sizeof(source.addr));
#ifdef ZS_FEATURE_DENY_V6
		rule = zs_deny_v6(ip6, l4.dport);
#endif
	} else {
		goto out;
	}
	if (rule != ZS_RULE_NONE) {
		reason = ZS_REASON_DENY;
		goto out;
	}
#ifdef ZS_FEATURE_DROP_UNSERVED
	if (zs_is_syn(&l4) && !zs_port_open(l4.dport)) {
		reason = ZS_REASON_UNSERVED;
		goto out;
	}
#endif
#ifdef ZS_FEATURE_RATE
	if (zs_is_syn(&l4)) {
		rule = zs_rate(l4.dport, &source);
		if (rule != ZS_RULE_NONE)
			reason = ZS_REASON_RATE;
	}
#endif
out:
	seen = zs_count_verdict(reason, rule, data_end - data);
	/* Malformed packets go to the stack, which drops them with its own counters. */
	if (reason == ZS_REASON_PASS || reason == ZS_REASON_MALFORMED)
		return ZS_VERDICT_PASS;
	zs_sample_drop(reason, rule, source.addr, seen);
	return ZS_VERDICT_DROP;
}

#endif
