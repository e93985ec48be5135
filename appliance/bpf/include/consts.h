/* Limits and codes shared by every hook and mirrored in Python
 * (zeroserve.datapath.structs reads this file; keep to `#define NAME <int>` lines
 * for anything Python needs). Sizes are defaults: the entry template may set them. */
#ifndef ZS_CONSTS_H
#define ZS_CONSTS_H

/* Why a packet got its verdict: the index into zs_verdicts. */
#define ZS_REASON_PASS 0      /* no rule matched */
#define ZS_REASON_DENY 1      /* source address in a deny rule */
#define ZS_REASON_MALFORMED 2 /* truncated or inconsistent headers; passed to the stack */
#define ZS_REASON_UNSERVED 3  /* a new TCP connection to a port no site serves */
#define ZS_REASON_RATE 4      /* a new TCP connection over the source's rate limit */
#define ZS_REASON_MAX 5

/* Rule ids index zs_rule_stats; 0 means "no rule" and is never assigned. */
#define ZS_RULE_NONE 0

#ifndef ZS_RULES_MAX
#define ZS_RULES_MAX 1024
#endif
#ifndef ZS_DENY_LPM_MAX
#define ZS_DENY_LPM_MAX 65536
#endif
#ifndef ZS_DENY_EXACT_MAX
#define ZS_DENY_EXACT_MAX 65536
#endif
#ifndef ZS_DENY_RECORDS_MAX
#define ZS_DENY_RECORDS_MAX 262144
#endif
/* Port classes of deny rules (a power of two); per generation, IPv4 /16 blocks
 * holding /17-/32 rules, /24 blocks held by /17-/24 rules, /24 blocks holding
 * /25-/32 rules, and addresses /25-/32 rules hold (deny.h). */
#ifndef ZS_DENY_CLASSES
#define ZS_DENY_CLASSES 4
#endif
#ifndef ZS_DENY4_CHUNKS_MAX
#define ZS_DENY4_CHUNKS_MAX 16384
#endif
#ifndef ZS_DENY4_RANKS_MAX
#define ZS_DENY4_RANKS_MAX 131072
#endif
#ifndef ZS_DENY4_LONGS_MAX
#define ZS_DENY4_LONGS_MAX 16384
#endif
#ifndef ZS_DENY4_HOSTS_MAX
#define ZS_DENY4_HOSTS_MAX 65536
#endif

#ifndef ZS_PORTS_MAX
#define ZS_PORTS_MAX 1024
#endif
#ifndef ZS_RATE_SOURCES_MAX
#define ZS_RATE_SOURCES_MAX 65536
#endif
/* Drops recorded in zs_drops: every one of the first this many per CPU and rule,
 * then one in this many (stats.h). */
#define ZS_DROP_SAMPLE_EVERY 64
#ifndef ZS_DROPS_MAX
#define ZS_DROPS_MAX 1024
#endif
#ifndef ZS_SITES_MAX
#define ZS_SITES_MAX 256
#endif
#ifndef ZS_IFACES_MAX
#define ZS_IFACES_MAX 256
#endif
#ifndef ZS_DISPATCH_MAX
#define ZS_DISPATCH_MAX 256
#endif

/* zs_site.dscp when the site leaves the DS field alone (DSCP is 6 bits). */
#define ZS_DSCP_KEEP 255

/* 802.1Q and 802.1ad tags skipped before the L3 header. */
#define ZS_VLAN_MAX_DEPTH 2

#endif
