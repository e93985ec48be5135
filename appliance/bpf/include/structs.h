/* Map keys and values, the one definition of their layout. Python builds its
 * ctypes mirror from this file (zeroserve.datapath.structs), so keep to plain
 * `struct name { __uN field; __uN field[len]; };` and bump LAYOUT_VERSION in
 * zeroserve/datapath/pins.py whenever a layout here changes. */
#ifndef ZS_STRUCTS_H
#define ZS_STRUCTS_H

/* Exact-match keys: addresses in network byte order. */
struct zs_addr4 {
	__u8 addr[4];
};

struct zs_addr6 {
	__u8 addr[16];
};

/* LPM trie keys: prefix length in bits, then the address. */
struct zs_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct zs_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of every deny map: which rule the prefix belongs to. */
struct zs_rule {
	__u32 id;
};

/* Per-CPU packet and byte counts, per rule and per verdict reason. */
struct zs_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
