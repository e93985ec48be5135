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

/* Counts a packet under its reason and rule; returns how many packets this CPU
 * has counted under the rule (under the reason, for reasons without a rule). */
static __always_inline __u64 zs_count_verdict(__u32 reason, __u32 rule, __u64 bytes)
{
	struct zs_counter *counter = zs_verdicts.lookup(&reason);

	zs_count(counter, bytes);
	if (rule != ZS_RULE_NONE) {
		counter = zs_rule_stats.lookup(&rule);
		zs_count(counter, bytes);
	}
	return counter ? counter->packets : 0;
}

/* Remember who was dropped and why, for the nth drop a CPU counted under the
 * rule: each of the first ZS_DROP_SAMPLE_EVERY, then one in ZS_DROP_SAMPLE_EVERY,
 * recorded as that many packets. A record costs a hash lookup and a clock read,
 * more than the rest of a denied packet's path; the rule counters stay exact.
 * The count is shared by CPUs, hence atomic; a lost first insert between two
 * CPUs costs one sample, not correctness. */
static __always_inline void zs_sample_drop(__u32 reason, __u32 rule, const __u8 *addr,
					   __u64 nth)
{
	struct zs_drop_key key = { .reason = reason, .rule = rule };
	struct zs_drop first = {};
	struct zs_drop *seen;
	__u64 weight = 1;
	__u64 now;

	if (nth > ZS_DROP_SAMPLE_EVERY) {
		if (nth % ZS_DROP_SAMPLE_EVERY)
			return;
		weight = ZS_DROP_SAMPLE_EVERY;
	}
	now = bpf_ktime_get_ns();

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	seen = zs_drops.lookup(&key);
	if (seen) {
		seen->last_ns = now;
		__sync_fetch_and_add(&seen->packets, weight);
		return;
	}
	first.first_ns = now;
	first.last_ns = now;
	first.packets = weight;
	zs_drops.update(&key, &first);
}

#endif
