/* Map keys and values, the one definition of their layout. Python builds its
 * ctypes mirror from this file (zeroserve.datapath.structs), so keep to plain
 * `struct name { __uN field; __uN field[len]; };` and bump LAYOUT_VERSION in
 * zeroserve/datapath/pins.py whenever a layout here changes. */
#ifndef ZS_STRUCTS_H
#define ZS_STRUCTS_H

/* Deny keys: the destination port a rule guards (0: every port), then the source
 * address, both in network byte order. The port leads so that in the LPM tries a
 * prefix length counts its 16 bits first and a rule never matches another port. */
struct zs_host4_key {
	__u8 port[2];
	__u8 addr[4];
};

struct zs_host6_key {
	__u8 port[2];
	__u8 addr[16];
};

struct zs_lpm4_key {
	__u32 prefixlen;
	__u8 port[2];
	__u8 addr[4];
	__u8 pad[2];
};

struct zs_lpm6_key {
	__u32 prefixlen;
	__u8 port[2];
	__u8 addr[16];
	__u8 pad[2];
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

/* Value of every deny map: which rule the prefix belongs to. */
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
 * window scale the stack will choose for the connection, and carry this TTL. */
struct zs_syncookie_cfg {
	__u64 interval_ns;
	__u32 limit;
	__u8 wscale;
	__u8 ttl;
	__u8 pad[2];
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
