/* Header parsing with a cursor: each parse_* checks its header against data_end,
 * moves the cursor past it and returns the next protocol (or -1 if truncated). */
#ifndef ZS_PARSE_H
#define ZS_PARSE_H

#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>

#include "consts.h"

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define zs_htons(x) ((__u16)__builtin_bswap16(x))
#else
#define zs_htons(x) ((__u16)(x))
#endif

/* frag_off bits holding the fragment offset (the kernel's IP_OFFSET is not uapi). */
#define ZS_IP_OFFSET 0x1FFF

/* TCP options fill at most 40 bytes, and every option takes at least one. */
#define ZS_TCP_OPTIONS_MAX 40
#define ZS_TCPOPT_EOL 0
#define ZS_TCPOPT_NOP 1
#define ZS_TCPOPT_MSS 2
#define ZS_TCPOPT_WINDOW 3
#define ZS_TCPOPT_SACK_PERM 4
#define ZS_TCPOPT_TIMESTAMP 8

struct zs_cursor {
	void *pos;
};

struct zs_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

static __always_inline int zs_is_vlan(__u16 proto)
{
	return proto == zs_htons(ETH_P_8021Q) || proto == zs_htons(ETH_P_8021AD);
}

/* Returns the L3 protocol (network order) after skipping VLAN tags. */
static __always_inline int zs_parse_eth(struct zs_cursor *cur, void *data_end)
{
	struct ethhdr *eth = cur->pos;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
	cur->pos = eth + 1;
	proto = eth->h_proto;
#ifdef ZS_FEATURE_VLAN
#pragma unroll
	for (int i = 0; i < ZS_VLAN_MAX_DEPTH; i++) {
		struct zs_vlan_hdr *vlan = cur->pos;

		if (!zs_is_vlan(proto))
			break;
		if ((void *)(vlan + 1) > data_end)
			return -1;
		cur->pos = vlan + 1;
		proto = vlan->encap_proto;
	}
#endif
	return proto;
}

/* Returns the L4 protocol; -1 if truncated or not a sane IPv4 header. */
static __always_inline int zs_parse_ipv4(struct zs_cursor *cur, void *data_end,
					 struct iphdr **out)
{
	struct iphdr *ip = cur->pos;
	int len;

	if ((void *)(ip + 1) > data_end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	len = ip->ihl * 4;
	if (cur->pos + len > data_end)
		return -1;
	cur->pos += len;
	*out = ip;
	return ip->protocol;
}

/* Returns the next header; -1 if truncated or not IPv6. */
static __always_inline int zs_parse_ipv6(struct zs_cursor *cur, void *data_end,
					 struct ipv6hdr **out)
{
	struct ipv6hdr *ip6 = cur->pos;

	if ((void *)(ip6 + 1) > data_end)
		return -1;
	if (ip6->version != 6)
		return -1;
	cur->pos = ip6 + 1;
	*out = ip6;
	return ip6->nexthdr;
}

/* A fragment after the first carries no L4 header, only payload. */
static __always_inline int zs_ipv4_later_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & zs_htons(ZS_IP_OFFSET)) != 0;
}

/* What the hooks read from L4: ports in network order (zero if not TCP or UDP)
 * and TCP flags as values, not a header pointer, which the compiler may rebuild
 * out of sight of the verifier's bounds checks. */
struct zs_l4 {
	__be16 sport;
	__be16 dport;
	__u8 tcp; /* TCP with a whole fixed header */
	__u8 syn; /* SYN set */
	__u8 ack; /* ACK set */
};

static __always_inline void zs_parse_l4(struct zs_cursor *cur, void *data_end, int proto,
					struct zs_l4 *l4)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = cur->pos;

		if ((void *)(tcp + 1) > data_end)
			return;
		cur->pos = tcp + 1;
		l4->sport = tcp->source;
		l4->dport = tcp->dest;
		l4->tcp = 1;
		l4->syn = tcp->syn;
		l4->ack = tcp->ack;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = cur->pos;

		if ((void *)(udp + 1) > data_end)
			return;
		cur->pos = udp + 1;
		l4->sport = udp->source;
		l4->dport = udp->dest;
	}
}

/* A TCP SYN without ACK: someone opening a connection. */
static __always_inline int zs_is_syn(const struct zs_l4 *l4)
{
	return l4->syn && !l4->ack;
}

#endif
