/* SYN cookies at the edge. Each CPU counts the SYNs to each served port per
 * interval; past the limit it answers a SYN itself: the frame is turned into the
 * SYN-ACK in place (addresses and ports swapped, the sequence number a cookie
 * from the kernel's own generator) and sent back out with XDP_TX, so a flood
 * costs no socket, no request and no wake-up. The client's ACK passes to the
 * stack, which takes it as a cookie ACK (tcp_syncookies=2; the agent sets it).
 *
 * As the kernel does (cookie_init_timestamp), the low bits of the SYN-ACK's
 * timestamp carry the client's window scale, SACK and ECN, which the stack reads
 * back from the ACK's echo (only right without per-connection timestamp offsets:
 * tcp_timestamps=2, which the agent sets too); a SYN without timestamps gets a
 * SYN-ACK with the MSS alone, and the connection runs without those options.
 * XDP_TX skips TC, so the SYN-ACK carries the port's MSS clamp and DS field itself.
 *
 * The SYNs under the limit reach the stack, which answers them with cookies of its
 * own (tcp_syncookies=2); that is also what makes it accept ours, as it takes cookie
 * ACKs only on a listener that sent a cookie in the last two minutes.
 *
 * Not answered here (they pass): IPv4 with options or fragmented, IPv6 with
 * extension headers, a SYN shorter than its SYN-ACK where the driver has no room to
 * grow the frame. The SYN's checksums are not verified: a corrupt SYN earns a
 * SYN-ACK its sender ignores, and the stack checks the ACK. XDP only. */
#ifndef ZS_SYNCOOKIE_H
#define ZS_SYNCOOKIE_H

#include "maps.h"
#include "parse.h"

#define ZS_TCP_HDR_MAX 60
/* Options of a SYN looked at, NOPs included: every common stack sends at most
 * eight; the verifier walks every path through them, so fewer is cheaper. */
#define ZS_SYN_OPTIONS_MAX 10
/* The SYN-ACK's TCP header: with the MSS alone, or with timestamps too (SACK or
 * NOPs, timestamp, NOP and window scale or NOPs). */
#define ZS_SYNACK_MSS_LEN 24
#define ZS_SYNACK_TS_LEN 40
/* Ethernet and up to two VLAN tags before the L3 header. */
#define ZS_L3_OFF_MAX (14 + 4 * ZS_VLAN_MAX_DEPTH)
#define ZS_IP_MF 0x2000
#define ZS_IP_DF 0x4000

/* The timestamp cookie's low bits (the kernel's TS_OPT_*), and its TCP_MAX_WSCALE. */
#define ZS_TS_BITS 6
#define ZS_TS_WSCALE_NONE 0xf
#define ZS_TS_SACK (1 << 4)
#define ZS_TS_ECN (1 << 5)
#define ZS_WSCALE_MAX 14

/* TCP flag bits of the byte after the data offset. */
#define ZS_TCP_SYN 0x02
#define ZS_TCP_ACK 0x10
#define ZS_TCP_ECE 0x40

/* The SYN-ACK's window, in segments: within the window the stack's child socket
 * offers once the ACK arrives (about 64 KiB by default), so the client never has to
 * take back data it was allowed to send. */
#define ZS_SYNACK_WINDOW_SEGMENTS 10

/* What the SYN asked for, read from its options. */
struct zs_syn_options {
	__be32 tsval; /* the client's, echoed in our tsecr */
	__u8 ts;
	__u8 sack;
	__u8 wscale; /* ZS_TS_WSCALE_NONE: no window scaling */
};

/* The port's settings when this CPU has passed its share of the port's SYNs in
 * this interval; NULL while the stack takes them, or for a port nobody serves
 * (the stack answers with a reset). */
static __always_inline struct zs_syncookie_port *
zs_syn_over_limit(__be16 dport, const struct zs_syncookie_cfg *cfg)
{
	struct zs_port key;
	struct zs_syncookie_port *port;
	struct zs_syn_window *window;
	__u64 now = bpf_ktime_get_ns();

	__builtin_memcpy(key.port, &dport, sizeof(key.port));
	port = zs_syncookie_ports.lookup(&key);
	if (!port)
		return 0;
	window = zs_syn_windows.lookup(&port->slot);
	if (!window)
		return 0;
	if (now - window->start_ns >= cfg->interval_ns) {
		window->start_ns = now;
		window->syns = 0;
	}
	window->syns++;
	return window->syns > cfg->limit ? port : 0;
}

/* Where option kind sits in hdr (kinds alias modulo ZS_SYN_KINDS), 0 if nowhere. */
#define ZS_SYN_KINDS 32

/* The body of the option of kind and size whose offset the walk recorded, or NULL. */
static __always_inline const __u8 *zs_syn_option(const __u8 *hdr, const __u8 *at, __u8 kind,
						 __u8 size)
{
	__u64 off = at[kind];

	/* Two checks, each on the register used after it: merged into one range
	 * check, they would bound a copy the verifier does not tie to off. */
	if (!off)
		return 0;
	asm volatile("" : "+r"(off));
	if (off > ZS_TCP_HDR_MAX - size)
		return 0;
	asm volatile("" : "+r"(off));
	if (hdr[off] != kind || hdr[off + 1] != size)
		return 0; /* an unknown kind that aliases it came later */
	return hdr + off + 2;
}

/* hdr is the SYN's TCP header copied to the stack, len its length (20..60). */
static __always_inline void zs_syn_parse_options(const __u8 *hdr, __u64 len,
						 struct zs_syn_options *opts)
{
	/* The walk only records where each kind is: results kept out of its branches
	 * leave the verifier one path per option layout, not one per set of results. */
	__u8 at[ZS_SYN_KINDS] = {};
	__u64 off = sizeof(struct tcphdr);
	const __u8 *body;

	for (int i = 0; i < ZS_SYN_OPTIONS_MAX; i++) {
		__u8 kind, size;

		if (off >= len || off >= ZS_TCP_HDR_MAX)
			break;
		/* Index with the register just checked, not a copy the verifier knows nothing of. */
		asm volatile("" : "+r"(off));
		kind = hdr[off];
		if (kind == ZS_TCPOPT_EOL)
			break;
		if (kind == ZS_TCPOPT_NOP) {
			off++;
			continue;
		}
		size = hdr[off + 1];
		if (size < 2)
			break;
		at[kind & (ZS_SYN_KINDS - 1)] = off;
		off += size;
	}
	opts->wscale = ZS_TS_WSCALE_NONE;
	body = zs_syn_option(hdr, at, ZS_TCPOPT_WINDOW, 3);
	if (body)
		opts->wscale = body[0] < ZS_WSCALE_MAX ? body[0] : ZS_WSCALE_MAX;
	opts->sack = zs_syn_option(hdr, at, ZS_TCPOPT_SACK_PERM, 2) != 0;
	body = zs_syn_option(hdr, at, ZS_TCPOPT_TIMESTAMP, 10);
	if (body) {
		opts->ts = 1;
		__builtin_memcpy(&opts->tsval, body, sizeof(opts->tsval));
	}
}

/* The kernel's cookie_init_timestamp: the clock in ms, its low bits the options. */
static __always_inline __u32 zs_syn_ts_cookie(const struct zs_syn_options *opts, int ecn)
{
	__u32 now = bpf_ktime_get_ns() / 1000000;
	__u32 options = opts->wscale;
	__u32 ts;

	if (opts->sack)
		options |= ZS_TS_SACK;
	if (ecn)
		options |= ZS_TS_ECN;
	ts = (now >> ZS_TS_BITS << ZS_TS_BITS) | options;
	if (ts > now)
		ts -= 1 << ZS_TS_BITS;
	return ts;
}

static __always_inline __u16 zs_csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* What the SYN-ACK says, gathered before the frame is resized. */
struct zs_synack {
	struct zs_syn_options opts;
	__be32 seq; /* the SYN's */
	__u32 cookie;
	__be16 sport; /* the SYN's */
	__be16 dport;
	__u16 mss;
	__u8 wscale;
	__u8 ecn;
	__u32 tcp_len;
};

/* Write the SYN-ACK's TCP header at tcp, checksum included (pseudo: the pseudo
 * header's sum); -1 if the frame is too short for it. */
static __always_inline int zs_synack_tcp(__u8 *tcp, void *data_end, const struct zs_synack *sa,
					 __s64 pseudo)
{
	struct tcphdr *th = (struct tcphdr *)tcp;
	__be32 *opt = (__be32 *)(th + 1);
	__u32 window = (__u32)sa->mss * ZS_SYNACK_WINDOW_SEGMENTS;
	__s64 sum;

	if ((void *)(tcp + ZS_SYNACK_MSS_LEN) > data_end)
		return -1;
	th->source = sa->dport;
	th->dest = sa->sport;
	th->seq = __builtin_bswap32(sa->cookie);
	th->ack_seq = __builtin_bswap32(__builtin_bswap32(sa->seq) + 1);
	tcp[12] = (sa->tcp_len / 4) << 4;
	tcp[13] = ZS_TCP_SYN | ZS_TCP_ACK | (sa->ecn ? ZS_TCP_ECE : 0);
	th->window = zs_htons(window < 0xffff ? window : 0xffff);
	th->check = 0;
	th->urg_ptr = 0;
	opt[0] = __builtin_bswap32((ZS_TCPOPT_MSS << 24) | (4 << 16) | sa->mss);
	sum = bpf_csum_diff(0, 0, (__be32 *)tcp, ZS_SYNACK_MSS_LEN, (__u32)pseudo);
	/* Without a timestamp the options the kernel would keep in it are lost. */
	if (sa->opts.ts) {
		if ((void *)(tcp + ZS_SYNACK_TS_LEN) > data_end)
			return -1;
		opt[1] = __builtin_bswap32(
			((sa->opts.sack ? (ZS_TCPOPT_SACK_PERM << 8) | 2
					: (ZS_TCPOPT_NOP << 8) | ZS_TCPOPT_NOP)
			 << 16) |
			(ZS_TCPOPT_TIMESTAMP << 8) | 10);
		opt[2] = __builtin_bswap32(zs_syn_ts_cookie(&sa->opts, sa->ecn));
		opt[3] = sa->opts.tsval;
		if (sa->opts.wscale == ZS_TS_WSCALE_NONE)
			opt[4] = 0x01010101;
		else
			opt[4] = __builtin_bswap32((ZS_TCPOPT_NOP << 24) | (ZS_TCPOPT_WINDOW << 16) |
						   (3 << 8) | sa->wscale);
		sum = bpf_csum_diff(0, 0, &opt[1], ZS_SYNACK_TS_LEN - ZS_SYNACK_MSS_LEN,
				    (__u32)sum);
	}
	th->check = zs_csum_fold(sum);
	return 0;
}

static __always_inline void zs_swap_mac(struct ethhdr *eth)
{
	__u8 mac[ETH_ALEN];

	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
}

static __always_inline void zs_syncookie_count(struct xdp_md *ctx, __u64 bytes)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct zs_counter zero = {};
	struct zs_counter *c = zs_syncookie_stats.lookup_or_try_init(&ifindex, &zero);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Answer a SYN past the limit with a cookie SYN-ACK (XDP_TX); anything else passes. */
static __always_inline int zs_syncookie(struct xdp_md *ctx)
{
	void *data = zs_data(ctx);
	void *data_end = zs_data_end(ctx);
	struct zs_cursor cur = { .pos = data };
	struct zs_synack sa = {};
	struct zs_syncookie_cfg *cfg;
	struct zs_syncookie_port *port;
	struct tcphdr *th;
	void *l3;
	__u8 hdr[ZS_TCP_HDR_MAX + 16] = {};
	__u32 zero = 0, th_len, l4_off;
	__u64 l3_off;
	__s64 value, pseudo;
	int proto, v4;

	proto = zs_parse_eth(&cur, data_end);
	l3 = cur.pos;
	l3_off = l3 - data;
	if (proto == zs_htons(ETH_P_IP)) {
		struct iphdr *ip;

		if (zs_parse_ipv4(&cur, data_end, &ip) != IPPROTO_TCP || ip->ihl != 5)
			return XDP_PASS;
		if (ip->frag_off & zs_htons(ZS_IP_MF | ZS_IP_OFFSET))
			return XDP_PASS;
		v4 = 1;
	} else if (proto == zs_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;

		if (zs_parse_ipv6(&cur, data_end, &ip6) != IPPROTO_TCP)
			return XDP_PASS;
		v4 = 0;
	} else {
		return XDP_PASS;
	}
	th = cur.pos;
	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	if (!th->syn || th->ack || th->rst || th->fin)
		return XDP_PASS;
	cfg = zs_syncookie_cfg.lookup(&zero);
	if (!cfg)
		return XDP_PASS;
	port = zs_syn_over_limit(th->dest, cfg);
	if (!port)
		return XDP_PASS;

	sa.ecn = cfg->ecn && th->ece && th->cwr;
	sa.sport = th->source;
	sa.dport = th->dest;
	sa.seq = th->seq;
	sa.wscale = cfg->wscale;
	/* The cookie helpers read the whole TCP header; a copy on the stack has a
	 * size the verifier can bound, where the packet's would not. */
	l4_off = cur.pos - data;
	th_len = th->doff * 4;
	if (th_len < sizeof(*th) || bpf_xdp_load_bytes(ctx, l4_off, hdr, th_len))
		return XDP_PASS;
	if (v4)
		value = bpf_tcp_raw_gen_syncookie_ipv4(l3, (struct tcphdr *)hdr, th_len);
	else
		value = bpf_tcp_raw_gen_syncookie_ipv6(l3, (struct tcphdr *)hdr, th_len);
	if (value < 0)
		return XDP_PASS;
	sa.cookie = (__u32)value;
	sa.mss = (__u16)(value >> 32);
	if (port->mss && port->mss < sa.mss)
		sa.mss = port->mss;
	zs_syn_parse_options(hdr, th_len, &sa.opts);
	sa.tcp_len = sa.opts.ts ? ZS_SYNACK_TS_LEN : ZS_SYNACK_MSS_LEN;

	/* Make the frame exactly as long as the SYN-ACK: any payload goes. A driver
	 * may have no room to grow it (for a SYN with fewer options than its SYN-ACK,
	 * such as a flood tool's bare one): then the stack answers. */
	if (bpf_xdp_adjust_tail(ctx, (int)(l4_off + sa.tcp_len) - (int)(data_end - data)))
		return XDP_PASS;
	data = zs_data(ctx);
	data_end = zs_data_end(ctx);
	if (l3_off > ZS_L3_OFF_MAX || data + sizeof(struct ethhdr) > data_end)
		return XDP_DROP;
	asm volatile("" : "+r"(l3_off)); /* as in zs_syn_parse_options */
	zs_swap_mac(data);
	if (v4) {
		struct iphdr *ip = data + l3_off;
		__u8 *tcp = (__u8 *)(ip + 1);
		__be32 addr, words[3];

		if ((void *)(tcp + ZS_SYNACK_MSS_LEN) > data_end)
			return XDP_DROP;
		addr = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = addr;
		ip->tos = port->tos;
		ip->tot_len = zs_htons(sizeof(*ip) + sa.tcp_len);
		ip->id = 0;
		ip->frag_off = zs_htons(ZS_IP_DF);
		ip->ttl = cfg->ttl;
		ip->check = 0;
		ip->check = zs_csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
		words[0] = ip->saddr;
		words[1] = ip->daddr;
		words[2] = __builtin_bswap32((IPPROTO_TCP << 16) | sa.tcp_len);
		pseudo = bpf_csum_diff(0, 0, words, sizeof(words), 0);
		if (zs_synack_tcp(tcp, data_end, &sa, pseudo))
			return XDP_DROP;
	} else {
		struct ipv6hdr *ip6 = data + l3_off;
		__u8 *tcp = (__u8 *)(ip6 + 1);
		__be32 words[10];

		if ((void *)(tcp + ZS_SYNACK_MSS_LEN) > data_end)
			return XDP_DROP;
		__builtin_memcpy(&words[0], &ip6->daddr, 16);
		__builtin_memcpy(&words[4], &ip6->saddr, 16);
		__builtin_memcpy(&ip6->saddr, &words[0], 16);
		__builtin_memcpy(&ip6->daddr, &words[4], 16);
		*(__be32 *)ip6 = __builtin_bswap32(0x60000000 | (__u32)port->tos << 20);
		ip6->payload_len = zs_htons(sa.tcp_len);
		ip6->hop_limit = cfg->ttl;
		words[8] = __builtin_bswap32(sa.tcp_len);
		words[9] = __builtin_bswap32(IPPROTO_TCP);
		pseudo = bpf_csum_diff(0, 0, words, sizeof(words), 0);
		if (zs_synack_tcp(tcp, data_end, &sa, pseudo))
			return XDP_DROP;
	}
	zs_syncookie_count(ctx, data_end - data);
	return XDP_TX;
}

#endif
