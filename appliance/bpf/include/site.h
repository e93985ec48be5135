/* Per-site work on the skb: count each local address:port's packets in both
 * directions, mark its egress DS field, and clamp the MSS its handshakes carry.
 * Rewrites go through the skb helpers, which keep the checksums (and any
 * checksum offload state) right. Needs ctx_skb.h first. */
#ifndef ZS_SITE_H
#define ZS_SITE_H

#include "maps.h"
#include "parse.h"

/* Offsets of L3 and L4 headers are below this (Ethernet, two VLAN tags, IPv4 with
 * options); saying so lets the verifier bound packet pointers built from them. */
#define ZS_HDR_OFF_MAX 256

static __always_inline struct zs_site *zs_site_lookup(struct zs_local_key *key)
{
	struct zs_site *site = zs_sites.lookup(key);

	if (site)
		return site;
	__builtin_memset(key->addr, 0, sizeof(key->addr)); /* the port on every address */
	return zs_sites.lookup(key);
}

static __always_inline void zs_site_count(__u32 id, int egress, __u64 bytes)
{
	struct zs_site_counter *c = zs_site_stats.lookup(&id);

	if (!c)
		return;
	if (egress) {
		c->out_packets++;
		c->out_bytes += bytes;
	} else {
		c->in_packets++;
		c->in_bytes += bytes;
	}
}

#ifdef ZS_FEATURE_DSCP
/* The DS field's six DSCP bits change; the two ECN bits stay as the stack set them. */
static __always_inline void zs_mark_v4(ZS_CTX *skb, __u64 ip_off, __u8 dscp)
{
	void *data = zs_data(skb);
	void *data_end = zs_data_end(skb);
	struct iphdr *ip;
	__be16 old_word, new_word;
	__u8 tos;

	if (ip_off >= ZS_HDR_OFF_MAX)
		return;
	ip = data + ip_off;
	if ((void *)(ip + 1) > data_end)
		return;
	tos = (dscp << 2) | (ip->tos & 0x3);
	if (tos == ip->tos)
		return;
	/* The checksum covers 16-bit words: version/IHL and TOS share one. */
	old_word = *(__be16 *)ip;
	((__u8 *)&new_word)[0] = ((__u8 *)ip)[0];
	((__u8 *)&new_word)[1] = tos;
	bpf_l3_csum_replace(skb, ip_off + __builtin_offsetof(struct iphdr, check), old_word, new_word, 2);
	bpf_skb_store_bytes(skb, ip_off + __builtin_offsetof(struct iphdr, tos), &tos, 1, 0);
}

static __always_inline void zs_mark_v6(ZS_CTX *skb, __u64 ip_off, __u8 dscp)
{
	void *data = zs_data(skb);
	void *data_end = zs_data_end(skb);
	__u8 *head;
	__u8 word[2];
	__u8 tclass;

	if (ip_off >= ZS_HDR_OFF_MAX)
		return;
	head = data + ip_off;
	if ((void *)(head + 2) > data_end)
		return;
	/* Traffic class straddles bytes 0 and 1; IPv6 has no header checksum. */
	tclass = (dscp << 2) | ((head[1] >> 4) & 0x3);
	word[0] = (head[0] & 0xf0) | (tclass >> 4);
	word[1] = (tclass << 4) | (head[1] & 0x0f);
	if (word[0] != head[0] || word[1] != head[1])
		bpf_skb_store_bytes(skb, ip_off, word, 2, 0);
}
#endif

#ifdef ZS_FEATURE_MSS
/* Lower the MSS option of a SYN or SYN-ACK to mss; other segments pass untouched. */
static __always_inline void zs_clamp_mss(ZS_CTX *skb, __u64 tcp_off, __u16 mss)
{
	void *data = zs_data(skb);
	void *data_end = zs_data_end(skb);
	struct tcphdr *tcp;
	__u64 off, end;

	if (tcp_off >= ZS_HDR_OFF_MAX)
		return;
	tcp = data + tcp_off;
	if ((void *)(tcp + 1) > data_end || !tcp->syn)
		return;
	off = tcp_off + sizeof(*tcp);
	end = tcp_off + tcp->doff * 4;
	for (int i = 0; i < ZS_TCP_OPTIONS_MAX; i++) {
		__u8 *opt;
		__be16 old_mss, new_mss;

		if (off >= end)
			return;
		data = zs_data(skb);
		data_end = zs_data_end(skb);
		if (off >= ZS_HDR_OFF_MAX + 60)
			return;
		opt = data + off;
		if ((void *)(opt + 1) > data_end || opt[0] == ZS_TCPOPT_EOL)
			return;
		if (opt[0] == ZS_TCPOPT_NOP) {
			off++;
			continue;
		}
		if ((void *)(opt + 2) > data_end || opt[1] < 2)
			return;
		if (opt[0] != ZS_TCPOPT_MSS || opt[1] != 4) {
			off += opt[1];
			continue;
		}
		if ((void *)(opt + 4) > data_end || off + 4 > end)
			return;
		old_mss = *(__be16 *)(opt + 2);
		if (zs_htons(old_mss) <= mss)
			return;
		new_mss = zs_htons(mss);
		bpf_l4_csum_replace(skb, tcp_off + __builtin_offsetof(struct tcphdr, check), old_mss, new_mss,
				    sizeof(new_mss));
		bpf_skb_store_bytes(skb, off + 2, &new_mss, sizeof(new_mss), 0);
		return;
	}
}
#endif

static __always_inline int zs_site_hook(ZS_CTX *skb, int egress)
{
	void *data = zs_data(skb);
	void *data_end = zs_data_end(skb);
	struct zs_cursor cur = { .pos = data };
	struct zs_local_key key = {};
	struct zs_l4 l4 = {};
	struct zs_site *site;
	__u64 ip_off, l4_off;
	int proto, v4;

	proto = zs_parse_eth(&cur, data_end);
	ip_off = cur.pos - data;
	if (proto == zs_htons(ETH_P_IP)) {
		struct iphdr *ip;

		proto = zs_parse_ipv4(&cur, data_end, &ip);
		if (proto < 0 || zs_ipv4_later_fragment(ip))
			return ZS_VERDICT_PASS;
		key.family = 4;
		__builtin_memcpy(key.addr, egress ? &ip->saddr : &ip->daddr, 4);
		v4 = 1;
	} else if (proto == zs_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;

		proto = zs_parse_ipv6(&cur, data_end, &ip6);
		if (proto < 0)
			return ZS_VERDICT_PASS;
		key.family = 6;
		__builtin_memcpy(key.addr, egress ? &ip6->saddr : &ip6->daddr, 16);
		v4 = 0;
	} else {
		return ZS_VERDICT_PASS;
	}
	l4_off = cur.pos - data;
	zs_parse_l4(&cur, data_end, proto, &l4);
	if (!l4.dport)
		return ZS_VERDICT_PASS;
	__builtin_memcpy(key.port, egress ? &l4.sport : &l4.dport, sizeof(key.port));
	site = zs_site_lookup(&key);
	if (!site)
		return ZS_VERDICT_PASS;
	zs_site_count(site->id, egress, skb->len);
#ifdef ZS_FEATURE_DSCP
	if (egress && site->dscp != ZS_DSCP_KEEP) {
		if (v4)
			zs_mark_v4(skb, ip_off, site->dscp);
		else
			zs_mark_v6(skb, ip_off, site->dscp);
	}
#endif
#ifdef ZS_FEATURE_MSS
	if (site->mss && l4.tcp)
		zs_clamp_mss(skb, l4_off, site->mss);
#endif
	return ZS_VERDICT_PASS;
}

#endif
