/* Source-address deny rules: an exact hash for host addresses, then an LPM trie
 * for prefixes. Longest match wins, so a host entry beats any prefix holding it. */
#ifndef ZS_DENY_H
#define ZS_DENY_H

#include "maps.h"
#include "parse.h"

#ifdef ZS_FEATURE_DENY_V4
static __always_inline __u32 zs_deny_v4(const struct iphdr *ip)
{
	struct zs_addr4 host;
	struct zs_lpm4_key key = { .prefixlen = 32 };
	struct zs_rule *rule;

	__builtin_memcpy(host.addr, &ip->saddr, sizeof(host.addr));
	rule = zs_deny4_host.lookup(&host);
	if (rule)
		return rule->id;
	__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
	rule = zs_deny4_lpm.lookup(&key);
	return rule ? rule->id : ZS_RULE_NONE;
}
#endif

#ifdef ZS_FEATURE_DENY_V6
static __always_inline __u32 zs_deny_v6(const struct ipv6hdr *ip6)
{
	struct zs_addr6 host;
	struct zs_lpm6_key key = { .prefixlen = 128 };
	struct zs_rule *rule;

	__builtin_memcpy(host.addr, &ip6->saddr, sizeof(host.addr));
	rule = zs_deny6_host.lookup(&host);
	if (rule)
		return rule->id;
	__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
	rule = zs_deny6_lpm.lookup(&key);
	return rule ? rule->id : ZS_RULE_NONE;
}
#endif

#endif
