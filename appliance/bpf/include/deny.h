/* Source-address deny rules, each scoped to destination ports or to every port,
 * and their maps. Longest match wins; at equal length a rule of the packet's own
 * port beats an every-port rule.
 *
 * The agent resolves the scopes ahead of time (zeroserve.datapath.deny): ports
 * that the same set of rules guards form a class, and each class's rules are
 * merged into one set of tables, so a packet asks one class, never its port and
 * then port 0. The tables come in two generations, and zs_deny_gen says which one
 * packets meet: a reload fills the idle one, then flips that one word, so every
 * packet meets one whole rule set, old or new, on every port at once. A slot
 * (generation * ZS_DENY_CLASSES + class) keys everything.
 *
 * IPv4 takes array lookups only, which the verifier inlines (no helper call, no
 * hashing, no trie walk). By prefix length (each tier is compiled in only if the
 * plan has such prefixes, ZS_FEATURE_DENY4_*):
 *   /0-/16   the rule of each (slot, /16 block)                          NET16
 *   /17-/24  a bit per /24 block; the rank of a set bit among all set    NET24
 *            bits indexes the block's rules, one per class
 *   /25-/32  a bit per /24 block too; its rank indexes a 256-bit map of  HOSTS
 *            the block's addresses, and an address's rank its rules
 * The /24 bits of a /16 block are kept only if it has any (a chunk of 4 words).
 * Longer tiers are asked first; a tier without a rule for the class defers to the
 * next. A bitmap word keeps the rank of its first set bit, so a rank is that plus
 * one popcount.
 * IPv6 keeps a hash for /128 and an LPM trie for shorter prefixes, behind a
 * bitmap of the first 24 bits of the prefixes.
 *
 * The agent writes the arrays through mmap (BPF_F_MMAPABLE), only ever in the
 * idle generation. zs_deny4_rules / zs_deny6_rules hold the rules as the agent
 * was given them, for `zeroserve status`; the program never reads them. */
#ifndef ZS_DENY_H
#define ZS_DENY_H

#include "maps.h"
#include "parse.h"

#if defined(ZS_FEATURE_DENY_V4) || defined(ZS_FEATURE_DENY_V6)
#define ZS_DENY_SLOTS (2 * ZS_DENY_CLASSES)

/* [0]: the generation packets meet; [1]: a count of writes, for the agent alone.
 * Sized by the class count, which every slot depends on, so that a program built
 * for another count gets deny maps of its own (the loader recreates a group whole). */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny_gen, 2 + ZS_DENY_CLASSES, ZS_PIN(zs_deny_gen));
/* generation * 65536 + destination port (host order) -> the port's class. */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny_ports, 2 * 65536, ZS_PIN(zs_deny_ports),
		 BPF_F_MMAPABLE);

/* The packet's slot: generation * ZS_DENY_CLASSES + the class of its port. */
static __always_inline __u32 zs_deny_slot(__be16 dport)
{
	__u32 first = 0;
	__u32 *gen = zs_deny_gen.lookup(&first);
	__u32 g, port, *class;

	if (!gen)
		return 0;
	/* Read once: the agent may flip it between two reads. */
	g = *(volatile __u32 *)gen & 1;
	port = g * 65536 + zs_htons(dport);
	class = zs_deny_ports.lookup(&port);
	return class ? g * ZS_DENY_CLASSES + *class : 0;
}
#endif

#ifdef ZS_FEATURE_DENY_V4

/* The rules as given: (port, prefix) -> rule. */
BPF_TABLE_PINNED("hash", struct zs_deny_rec4, struct zs_rule, zs_deny4_rules,
		 ZS_DENY_RECORDS_MAX, ZS_PIN(zs_deny4_rules), BPF_F_NO_PREALLOC);
#if defined(ZS_FEATURE_DENY4_HOSTS) || defined(ZS_FEATURE_DENY4_NET24)
#define ZS_DENY4_BLOCKS 1
/* generation * 65536 + /16 block -> 1 + its chunk: the four words of its 256 /24
 * blocks in zs_deny4_blocks (0: no /17-/32 rule there). */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny4_chunks, 2 * 65536, ZS_PIN(zs_deny4_chunks),
		 BPF_F_MMAPABLE);
/* (generation * ZS_DENY4_CHUNKS_MAX + chunk) * 4 + word -> which of the word's 64 /24
 * blocks hold rules, and the ranks of its first. */
BPF_TABLE_PINNED("array", __u32, struct zs_deny_word, zs_deny4_blocks,
		 2 * ZS_DENY4_CHUNKS_MAX * 4, ZS_PIN(zs_deny4_blocks), BPF_F_MMAPABLE);
#endif
#ifdef ZS_FEATURE_DENY4_HOSTS
/* generation * ZS_DENY4_LONGS_MAX + rank of a /24 block holding /25-/32 rules -> which
 * of its 256 addresses they hold. */
BPF_TABLE_PINNED("array", __u32, struct zs_deny_hosts, zs_deny4_hostmap,
		 2 * ZS_DENY4_LONGS_MAX, ZS_PIN(zs_deny4_hostmap), BPF_F_MMAPABLE);
/* (generation * ZS_DENY4_HOSTS_MAX + rank of an address) * ZS_DENY_CLASSES + class -> rule. */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny4_hosts, 2 * ZS_DENY4_HOSTS_MAX * ZS_DENY_CLASSES,
		 ZS_PIN(zs_deny4_hosts), BPF_F_MMAPABLE);
#endif
#ifdef ZS_FEATURE_DENY4_NET24
/* (generation * ZS_DENY4_RANKS_MAX + rank of a /24 block) * ZS_DENY_CLASSES + class -> rule. */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny4_net24,
		 2 * ZS_DENY4_RANKS_MAX * ZS_DENY_CLASSES, ZS_PIN(zs_deny4_net24),
		 BPF_F_MMAPABLE);
#endif
#ifdef ZS_FEATURE_DENY4_NET16
/* slot * 65536 + /16 block -> rule. */
BPF_TABLE_PINNED("array", __u32, __u32, zs_deny4_net16, ZS_DENY_SLOTS * 65536,
		 ZS_PIN(zs_deny4_net16), BPF_F_MMAPABLE);
#endif

/* The rule in a rule array, or none. */
static __always_inline __u32 zs_deny_cell(__u32 *rule)
{
	return rule ? *rule : ZS_RULE_NONE;
}

#ifdef ZS_DENY4_BLOCKS
/* The rule of a /17-/32 prefix holding addr, if its /16 block has a chunk. */
static __always_inline __u32 zs_deny4_chunk(__u32 gen, __u32 class, __u32 chunk, __u32 addr)
{
	__u32 index = (gen * ZS_DENY4_CHUNKS_MAX + chunk) * 4 + ((addr >> 14) & 3);
	__u64 bit = 1ULL << ((addr >> 8) & 63);
	struct zs_deny_word *word = zs_deny4_blocks.lookup(&index);
	__u32 rule;

	if (!word)
		return ZS_RULE_NONE;
#ifdef ZS_FEATURE_DENY4_HOSTS
	if (word->longs & bit) {
		__u32 at = gen * ZS_DENY4_LONGS_MAX + word->longs_base +
			   __builtin_popcountll(word->longs & (bit - 1));
		struct zs_deny_hosts *hosts = zs_deny4_hostmap.lookup(&at);
		__u32 host = addr & 255;
		__u64 hbit = 1ULL << (host & 63);
		__u64 bits = hosts ? hosts->bits[(host >> 6) & 3] : 0;

		if (bits & hbit) {
			at = (gen * ZS_DENY4_HOSTS_MAX + hosts->base + hosts->below[(host >> 6) & 3] +
			      __builtin_popcountll(bits & (hbit - 1))) *
				     ZS_DENY_CLASSES +
			     class;
			rule = zs_deny_cell(zs_deny4_hosts.lookup(&at));
			if (rule != ZS_RULE_NONE)
				return rule;
		}
	}
#endif
#ifdef ZS_FEATURE_DENY4_NET24
	if (word->nets & bit) {
		__u32 at = (gen * ZS_DENY4_RANKS_MAX + word->nets_base +
			    __builtin_popcountll(word->nets & (bit - 1))) *
				   ZS_DENY_CLASSES +
			   class;

		return zs_deny_cell(zs_deny4_net24.lookup(&at));
	}
#endif
	return ZS_RULE_NONE;
}
#endif

static __always_inline __u32 zs_deny_v4(const struct iphdr *ip, __be16 dport)
{
	__u32 slot = zs_deny_slot(dport);
	__u32 addr = __builtin_bswap32(ip->saddr);
	__u32 rule = ZS_RULE_NONE;

#ifdef ZS_DENY4_BLOCKS
	__u32 gen = slot / ZS_DENY_CLASSES;
	__u32 at16 = gen * 65536 + (addr >> 16);
	__u32 *chunk = zs_deny4_chunks.lookup(&at16);

	if (chunk && *chunk) {
		rule = zs_deny4_chunk(gen, slot % ZS_DENY_CLASSES, *chunk - 1, addr);
		if (rule != ZS_RULE_NONE)
			return rule;
	}
#endif
#ifdef ZS_FEATURE_DENY4_NET16
	{
		__u32 at = slot * 65536 + (addr >> 16);

		rule = zs_deny_cell(zs_deny4_net16.lookup(&at));
	}
#endif
	return rule;
}
#endif

#ifdef ZS_FEATURE_DENY_V6
#define ZS_DENY6_WORDS (1 << 18) /* 2^24 starts (first 24 bits) of sources, 64 to a word */

/* The rules as given: (port, prefix) -> rule. */
BPF_TABLE_PINNED("hash", struct zs_deny_rec6, struct zs_rule, zs_deny6_rules,
		 ZS_DENY_RECORDS_MAX, ZS_PIN(zs_deny6_rules), BPF_F_NO_PREALLOC);
/* (slot, /128 source) -> rule. */
BPF_TABLE_PINNED("hash", struct zs_host6_key, struct zs_rule, zs_deny6_host,
		 ZS_DENY_EXACT_MAX, ZS_PIN(zs_deny6_host), BPF_F_NO_PREALLOC);
/* (slot, IPv6 source prefix shorter than /128) -> rule. */
BPF_TABLE_PINNED("lpm_trie", struct zs_lpm6_key, struct zs_rule, zs_deny6_lpm,
		 ZS_DENY_LPM_MAX, ZS_PIN(zs_deny6_lpm), BPF_F_NO_PREALLOC);
/* generation * ZS_DENY6_WORDS + (first 24 bits of a source) / 64 -> a bit for each
 * 24-bit start some rule's prefix covers: most sources no rule holds stop here. */
BPF_TABLE_PINNED("array", __u32, __u64, zs_deny6_blocks, 2 * ZS_DENY6_WORDS,
		 ZS_PIN(zs_deny6_blocks), BPF_F_MMAPABLE);

static __always_inline __u32 zs_deny_v6(const struct ipv6hdr *ip6, __be16 dport)
{
	__u32 slot = zs_deny_slot(dport);
	__u32 top = ip6->saddr.in6_u.u6_addr8[0] << 16 | ip6->saddr.in6_u.u6_addr8[1] << 8 |
		    ip6->saddr.in6_u.u6_addr8[2];
	__u32 index = slot / ZS_DENY_CLASSES * ZS_DENY6_WORDS + (top >> 6);
	__u64 *word = zs_deny6_blocks.lookup(&index);
	struct zs_host6_key host = { .slot = slot };
	struct zs_lpm6_key key = { .prefixlen = 32 + 128, .slot = slot };
	struct zs_rule *rule;

	if (!word || !(*word & (1ULL << (top & 63))))
		return ZS_RULE_NONE;
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
