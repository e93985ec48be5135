/* Every map, one line of purpose each. Maps are pinned by name under ZS_PIN_DIR
 * (set by the entry template to a layout-versioned bpffs path), so rules and
 * counters outlive program reloads. A feature's maps exist only while its flag is
 * set; the loader unpins the maps of features that are gone. */
#ifndef ZS_MAPS_H
#define ZS_MAPS_H

#include "consts.h"
#include "structs.h"

#ifndef ZS_PIN_DIR
#error "ZS_PIN_DIR must name the bpffs directory for this hook's maps"
#endif

#define ZS_PIN(name) ZS_PIN_DIR "/" #name

#ifdef ZS_FEATURE_DENY_V4
/* IPv4 source prefixes shorter than /32 -> rule. */
BPF_TABLE_PINNED("lpm_trie", struct zs_lpm4_key, struct zs_rule, zs_deny4_lpm,
		 ZS_DENY_LPM_MAX, ZS_PIN(zs_deny4_lpm), BPF_F_NO_PREALLOC);
/* IPv4 /32 sources -> rule; one hash probe before the trie walk. */
BPF_TABLE_PINNED("hash", struct zs_addr4, struct zs_rule, zs_deny4_host,
		 ZS_DENY_EXACT_MAX, ZS_PIN(zs_deny4_host));
#endif

#ifdef ZS_FEATURE_DENY_V6
/* IPv6 source prefixes shorter than /128 -> rule. */
BPF_TABLE_PINNED("lpm_trie", struct zs_lpm6_key, struct zs_rule, zs_deny6_lpm,
		 ZS_DENY_LPM_MAX, ZS_PIN(zs_deny6_lpm), BPF_F_NO_PREALLOC);
/* IPv6 /128 sources -> rule. */
BPF_TABLE_PINNED("hash", struct zs_addr6, struct zs_rule, zs_deny6_host,
		 ZS_DENY_EXACT_MAX, ZS_PIN(zs_deny6_host));
#endif

/* Packets and bytes that hit each rule, per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_counter, zs_rule_stats, ZS_RULES_MAX,
		 ZS_PIN(zs_rule_stats));
/* Packets and bytes per verdict reason (ZS_REASON_*), per CPU. */
BPF_TABLE_PINNED("percpu_array", __u32, struct zs_counter, zs_verdicts, ZS_REASON_MAX,
		 ZS_PIN(zs_verdicts));

#endif
