/* Every map but the deny rules' (deny.h), one line of purpose each. Maps are
 * pinned by name: bcc pins them fresh under ZS_PIN_DIR (set by the entry
 * template to the hook's build directory), and the loader keeps the
 * layout-versioned pin of each, one directory per hook (build.py), so
 * rules and counters outlive program reloads. A map exists only while its hook
 * (ZS_HOOK_*) and feature flag are set; the loader unpins the maps of features
 * that are gone. */
#ifndef ZS_MAPS_H
#define ZS_MAPS_H

#include "consts.h"
#include "structs.h"

#ifndef ZS_PIN_DIR
#error "ZS_PIN_DIR must name the bpffs directory for this hook's maps"
#endif

#define ZS_PIN(name) ZS_PIN_DIR "/" #name

#ifdef ZS_HOOK_XDP

#ifdef ZS_FEATURE_DROP_UNSERVED
/* TCP ports that take new connections; SYNs to any other port are dropped. */
BPF_TABLE_PINNED("hash", struct zs_port, __u32, zs_open_ports, ZS_PORTS_MAX,
		 ZS_PIN(zs_open_ports));
#endif

#ifdef ZS_FEATURE_RATE
/* TCP port -> its per-source connection rate rule. */
BPF_TABLE_PINNED("hash", struct zs_port, struct zs_rate_cfg, zs_rate_ports, ZS_PORTS_MAX,
		 ZS_PIN(zs_rate_ports));
/* (rule, source) -> token bucket; least recently used sources are forgotten. */
BPF_TABLE_PINNED("lru_hash", struct zs_rate_key, struct zs_bucket, zs_rate_buckets,
		 ZS_RATE_SOURCES_MAX, ZS_PIN(zs_rate_buckets));
#endif

#ifdef ZS_FEATURE_SYNCOOKIE
/* Slot 0: the SYN cookie settings. */
BPF_TABLE_PINNED("array", __u32, struct zs_syncookie_cfg, zs_syncookie_cfg, 1,
		 ZS_PIN(zs_syncookie_cfg));
/* TCP port the engine serves -> its window slot and SYN-ACK marks. */
BPF_TABLE_PINNED("hash", struct zs_port, struct zs_syncookie_port, zs_syncookie_ports,
		 ZS_PORTS_MAX, ZS_PIN(zs_syncookie_ports));
/* Each served port's SYN count in the current interval, per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_syn_window, zs_syn_windows, ZS_PORTS_MAX,
		 ZS_PIN(zs_syn_windows));
/* Ingress ifindex -> SYN-ACKs sent back out of it and their bytes, per CPU. */
BPF_TABLE_PINNED("percpu_hash", __u32, struct zs_counter, zs_syncookie_stats, ZS_IFACES_MAX,
		 ZS_PIN(zs_syncookie_stats));
#endif

/* Packets and bytes that hit each rule, per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_counter, zs_rule_stats, ZS_RULES_MAX,
		 ZS_PIN(zs_rule_stats));
/* Recently dropped sources, for `zeroserve status`; the oldest are forgotten. */
BPF_TABLE_PINNED("lru_hash", struct zs_drop_key, struct zs_drop, zs_drops, ZS_DROPS_MAX,
		 ZS_PIN(zs_drops));
/* Packets and bytes per verdict reason (ZS_REASON_*), per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_counter, zs_verdicts, ZS_REASON_MAX,
		 ZS_PIN(zs_verdicts));

#endif /* ZS_HOOK_XDP */

#ifdef ZS_HOOK_TC
/* Local address:port -> the site's marks and counter slot. */
BPF_TABLE_PINNED("hash", struct zs_local_key, struct zs_site, zs_sites, ZS_SITES_MAX,
		 ZS_PIN(zs_sites));
/* Packets and bytes per site id, both directions, per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_site_counter, zs_site_stats, ZS_SITES_MAX,
		 ZS_PIN(zs_site_stats));
#endif

#ifdef ZS_HOOK_SOCK
/* Served local address:port -> slot in zs_socks. */
BPF_TABLE_PINNED("hash", struct zs_local_key, __u32, zs_dispatch, ZS_DISPATCH_MAX,
		 ZS_PIN(zs_dispatch));
/* The listening sockets, filled by the agent with the engine's socket fds. */
BPF_TABLE_PINNED("sockmap", __u32, __u32, zs_socks, ZS_DISPATCH_MAX, ZS_PIN(zs_socks));
#endif

#endif
