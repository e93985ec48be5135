/* Per-CPU counters: no atomics needed, Python sums the CPUs. */
#ifndef ZS_STATS_H
#define ZS_STATS_H

#include "maps.h"

static __always_inline void zs_count(struct zs_counter *c, __u64 bytes)
{
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void zs_count_verdict(__u32 reason, __u32 rule, __u64 bytes)
{
	zs_count(zs_verdicts.lookup(&reason), bytes);
	if (rule != ZS_RULE_NONE)
		zs_count(zs_rule_stats.lookup(&rule), bytes);
}

#endif
