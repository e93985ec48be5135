/* Source-address deny rules, each scoped to a destination port (0: every port).
 * Per port, an exact hash for host addresses, then an LPM trie for prefixes:
 * longest match wins, so a host entry beats any prefix holding it. Rules of the
 * packet's own port are asked before the every-port rules. */
#ifndef ZS_DENY_H
#define ZS_DENY_H

#include "maps.h"
#include "parse.h"

#ifdef ZS_FEATURE_DENY_V4
static __always_inline __u32 zs_deny_v4_port(const struct iphdr *ip, __be16 port)
{
	struct zs_host4_key host;
	struct zs_lpm4_key key = { .prefixlen = 16 + 32 };
	struct zs_rule *rule;

	__builtin_memcpy(host.port, &port, sizeof(host.port));
	__builtin_memcpy(host.addr, &ip->saddr, sizeof(host.addr));
	rule = zs_deny4_host.lookup(&host);
	if (rule)
		return rule->id;
	__builtin_memcpy(key.port, &port, sizeof(key.port));
	__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
	rule = zs_deny4_lpm.lookup(&key);
	return rule ? rule->id : ZS_RULE_NONE;
}

static __always_inline __u32 zs_deny_v4(const struct iphdr *ip, __be16 dport)
{
	__u32 rule = ZS_RULE_NONE;

	if (dport)
		rule = zs_deny_v4_port(ip, dport);
	return rule != ZS_RULE_NONE ? rule : zs_deny_v4_port(ip, 0);
}
#endif

#ifdef ZS_FEATURE_DENY_V6
static __always_inline __u32 zs_deny_v6_port(const struct ipv6hdr *ip6, __be16 port)
{
	struct zs_host6_key host;
	struct zs_lpm6_key key = { .prefixlen = 16 + 128 };
	struct zs_rule *rule;

	__builtin_memcpy(host.port, &port, sizeof(host.port));
	__builtin_memcpy(host.addr, &ip6->saddr, sizeof(host.addr));
	rule = zs_deny6_host.lookup(&host);
	if (rule)
		return rule->id;
	__builtin_memcpy(key.port, &port, sizeof(key.port));
	__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
	rule = zs_deny6_lpm.lookup(&key);
	return rule ? rule->id : ZS_RULE_NONE;
}

static __always_inline __u32 zs_deny_v6(const struct ipv6hdr *ip6, __be16 dport)
{
	__u32 rule = ZS_RULE_NONE;

	if (dport)
		rule = zs_deny_v6_port(ip6, dport);
	return rule != ZS_RULE_NONE ? rule : zs_deny_v6_port(ip6, 0);
}
#endif

#endif
