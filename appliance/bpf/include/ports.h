/* Per-port checks on new TCP connections: unserved ports and per-source rates. */
#ifndef ZS_PORTS_H
#define ZS_PORTS_H

#include "maps.h"
#include "parse.h"

#ifdef ZS_FEATURE_DROP_UNSERVED
static __always_inline int zs_port_open(__be16 dport)
{
	struct zs_port key;

	__builtin_memcpy(key.port, &dport, sizeof(key.port));
	return zs_open_ports.lookup(&key) != NULL;
}
#endif

#ifdef ZS_FEATURE_RATE
/* Takes one connection's cost from the source's bucket under the port's rule;
 * returns the rule if the bucket is short (the SYN is to be dropped), else none.
 * Buckets are shared by CPUs without locks: a race loses at most a refill step. */
static __always_inline __u32 zs_rate(__be16 dport, struct zs_rate_key *key)
{
	struct zs_port port;
	struct zs_rate_cfg *cfg;
	struct zs_bucket *bucket;
	__u64 now = bpf_ktime_get_ns();
	__u64 credit;

	__builtin_memcpy(port.port, &dport, sizeof(port.port));
	cfg = zs_rate_ports.lookup(&port);
	if (!cfg)
		return ZS_RULE_NONE;
	key->rule = cfg->rule;
	bucket = zs_rate_buckets.lookup(key);
	if (!bucket) {
		struct zs_bucket fresh = { .credit_ns = cfg->window_ns - cfg->cost_ns,
					   .stamp_ns = now };

		zs_rate_buckets.update(key, &fresh);
		return ZS_RULE_NONE;
	}
	credit = bucket->credit_ns + (now - bucket->stamp_ns);
	if (credit > cfg->window_ns)
		credit = cfg->window_ns;
	bucket->stamp_ns = now;
	if (credit < cfg->cost_ns) {
		bucket->credit_ns = credit;
		return cfg->rule;
	}
	bucket->credit_ns = credit - cfg->cost_ns;
	return ZS_RULE_NONE;
}
#endif

#endif
