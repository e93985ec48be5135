/* Map keys and values, the one definition of their layout. Python builds its
 * ctypes mirror from this file (zeroserve.datapath.structs), so keep to plain
 * `struct name { __uN field; __uN field[len]; };` and bump LAYOUT_VERSION in
 * zeroserve/datapath/pins.py whenever a layout here changes. */
#ifndef ZS_STRUCTS_H
#define ZS_STRUCTS_H

/* IPv6 deny keys: the slot (a port class in one generation, deny.h) then the
 * source address in network byte order. The slot leads so that in the LPM trie a
 * prefix length counts its 32 bits first and a prefix never matches another slot. */
struct zs_host6_key {
	__u32 slot;
	__u8 addr[16];
};

struct zs_lpm6_key {
	__u32 prefixlen;
	__u32 slot;
	__u8 addr[16];
};

/* A deny rule's prefix as the agent was given it: the port it guards (network
 * order, 0: every port), the prefix length and the network address. */
struct zs_deny_rec4 {
	__u8 port[2];
	__u8 prefixlen;
	__u8 pad;
	__u8 addr[4];
};

struct zs_deny_rec6 {
	__u8 port[2];
	__u8 prefixlen;
	__u8 pad;
	__u8 addr[16];
};

/* 64 consecutive IPv4 /24 blocks: which hold a /17-/24 rule (nets) or a longer
 * one (longs), and how many bits of each kind all lower words hold (the rank of
 * this word's first). */
struct zs_deny_word {
	__u64 nets;
	__u64 longs;
	__u32 nets_base;
	__u32 longs_base;
};

/* The 256 addresses of a /24 block: which /25-/32 rules hold, the rank of the
 * first, and how many bits the words below each word hold. */
struct zs_deny_hosts {
	__u64 bits[4];
	__u32 base;
	__u8 below[4];
};

/* A destination port in network byte order: the key of the per-port maps. */
struct zs_port {
	__u8 port[2];
};

/* A rate rule on a port: a token bucket per source holding up to window_ns of
 * credit, refilled one ns per ns, of which each new connection costs cost_ns
 * (window / events), so a source may open `events` connections per window. */
struct zs_rate_cfg {
	__u32 rule;
	__u32 pad;
	__u64 window_ns;
	__u64 cost_ns;
};

/* One source's bucket under one rule; IPv4 sources fill addr[0..3]. */
struct zs_rate_key {
	__u32 rule;
	__u8 addr[16];
};

struct zs_bucket {
	__u64 credit_ns;
	__u64 stamp_ns;
};

/* A local address:port, the key of TC's sites and sk_lookup's dispatch (IPv4 in
 * addr[0..3]; an all-zero addr is every address of the family). */
struct zs_local_key {
	__u8 port[2];
	__u8 family;
	__u8 pad;
	__u8 addr[16];
};

/* What TC does for a site: its counter slot, MSS clamp (0: none), DSCP. */
struct zs_site {
	__u32 id;
	__u16 mss;
	__u8 dscp;
	__u8 flags;
};

/* Per-site counters, ingress and egress, per CPU. */
struct zs_site_counter {
	__u64 in_packets;
	__u64 in_bytes;
	__u64 out_packets;
	__u64 out_bytes;
};

/* Value of the deny hashes and tries: which rule the prefix belongs to. */
struct zs_rule {
	__u32 id;
};

/* A dropped source, per verdict reason and rule (0 for reasons without one); IPv4
 * sources are IPv4-mapped, as in zs_rate_key. */
struct zs_drop_key {
	__u32 reason;
	__u32 rule;
	__u8 addr[16];
};

/* When the key's packets were first and last dropped (bpf_ktime_get_ns), and how many. */
struct zs_drop {
	__u64 first_ns;
	__u64 last_ns;
	__u64 packets;
};

/* SYN cookies: each CPU passes a served port's first `limit` SYNs of every
 * interval to the stack and answers the rest itself; its SYN-ACKs announce the
 * window scale the stack will choose for the connection, carry this TTL, and take
 * up ECN when asked if the stack would (ecn: 1). */
struct zs_syncookie_cfg {
	__u64 interval_ns;
	__u32 limit;
	__u8 wscale;
	__u8 ttl;
	__u8 ecn;
	__u8 pad;
};

/* A served port under SYN cookies: its slot in zs_syn_windows, and what TC marks on
 * its stack's SYN-ACKs, which XDP's skip: the MSS clamp (0: none) and the DS field. */
struct zs_syncookie_port {
	__u32 slot;
	__u16 mss;
	__u8 tos;
	__u8 pad;
};

/* One port's SYNs on one CPU in the current interval. */
struct zs_syn_window {
	__u64 start_ns;
	__u64 syns;
};

/* Per-CPU packet and byte counts, per rule and per verdict reason. */
struct zs_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
