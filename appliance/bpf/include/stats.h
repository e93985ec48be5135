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

/* Remember who was dropped and why. The count is shared by CPUs, hence atomic;
 * a lost first insert between two CPUs costs one sample, not correctness. */
static __always_inline void zs_sample_drop(__u32 reason, __u32 rule, const __u8 *addr)
{
	struct zs_drop_key key = { .reason = reason, .rule = rule };
	struct zs_drop first = {};
	struct zs_drop *seen;
	__u64 now = bpf_ktime_get_ns();

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	seen = zs_drops.lookup(&key);
	if (seen) {
		seen->last_ns = now;
		__sync_fetch_and_add(&seen->packets, 1);
		return;
	}
	first.first_ns = now;
	first.last_ns = now;
	first.packets = 1;
	zs_drops.update(&key, &first);
}

#endif
