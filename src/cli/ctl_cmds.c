/* ledgerctl: cluster, node, org, vault, tip, integrity and backup commands. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ctl.h"
#include "net/grpc.h"
#include "util/mem.h"

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past a separate
 * value. Returns 1 matched (value in *val), 0 not this flag, -1 missing value. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t nl = strlen(name);
    if (strcmp(argv[*i], name) == 0) {
        if (*i + 1 >= argc)
            return -1;
        *val = argv[++*i];
        return 1;
    }
    if (strncmp(argv[*i], name, nl) == 0 && argv[*i][nl] == '=') {
        *val = argv[*i] + nl + 1;
        return 1;
    }
    return 0;
}

static int no_args(const char *cmd, int argc, char **argv)
{
    if (argc > 0)
        return ldg_ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[0]);
    return 0;
}

static void emit(const struct ldg_ctl *ctl, const struct ldg_ctl_table *t)
{
    if (ctl->json) {
        ldg_ctl_table_json(t, stdout);
        fputc('\n', stdout);
    } else {
        ldg_ctl_table_print(t, stdout);
    }
}

static void emit_record(const struct ldg_ctl *ctl, const struct ldg_ctl_table *t)
{
    if (ctl->json) {
        ldg_ctl_table_json_row(t, 0, stdout);
        fputc('\n', stdout);
    } else {
        ldg_ctl_table_print_record(t, 0, stdout);
    }
}

static const char *node_id(const Ledger__V1__NodeId *n)
{
    return n != NULL && n->id[0] != '\0' ? n->id : "-";
}

#define ROLE(r) ldg_ctl_enum_name(&ledger__v1__node_role__descriptor, (int)(r), "NODE_ROLE_")

/* ---- cluster info ---- */

static const struct ldg_ctl_col member_cols[] = {
    {"node_id", LDG_CTL_STR}, {"address", LDG_CTL_STR},   {"role", LDG_CTL_STR},
    {"leader", LDG_CTL_BOOL}, {"reachable", LDG_CTL_BOOL}, {"match_index", LDG_CTL_NUM},
};

int ldg_ctl_cmd_cluster_info(struct ldg_ctl *ctl, int argc, char **argv)
{
    int rc = no_args("cluster info", argc, argv);
    if (rc != 0)
        return rc;
    Ledger__V1__GetClusterInfoRequest req = LEDGER__V1__GET_CLUSTER_INFO_REQUEST__INIT;
    struct ldg_ctl_reply r;
    if (ldg_ctl_call_checked(ctl, NULL, "AdminService/GetClusterInfo", &req.base,
                             &ledger__v1__get_cluster_info_response__descriptor, &r) != 0) {
        return LDG_CTL_EXIT_FAIL;
    }
    const Ledger__V1__GetClusterInfoResponse *ci = (void *)r.resp;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, member_cols, 6);
    for (size_t i = 0; i < ci->n_members; i++) {
        const Ledger__V1__ClusterMember *m = ci->members[i];
        ldg_ctl_cell(&t, "%s", node_id(m->node_id));
        ldg_ctl_cell(&t, "%s", m->address);
        ldg_ctl_cell(&t, "%s", ROLE(m->role));
        ldg_ctl_cell(&t, "%s", m->is_leader ? "true" : "false");
        ldg_ctl_cell(&t, "%s", m->reachable ? "true" : "false");
        ldg_ctl_cell(&t, "%" PRIu64, m->match_index);
    }
    if (ctl->json) {
        fputs("{\"cluster_id\": ", stdout);
        ldg_ctl_json_str(stdout, ci->cluster_id);
        fputs(", \"leader_id\": ", stdout);
        if (ci->leader_id != NULL && ci->leader_id->id[0] != '\0')
            ldg_ctl_json_str(stdout, ci->leader_id->id);
        else
            fputs("null", stdout);
        printf(", \"term\": %" PRIu64 ", \"commit_index\": %" PRIu64 ", \"members\": ", ci->term,
               ci->commit_index);
        ldg_ctl_table_json(&t, stdout);
        fputs("}\n", stdout);
    } else {
        printf("cluster %s  leader %s  term %" PRIu64 "  commit index %" PRIu64 "\n\n",
               ci->cluster_id[0] ? ci->cluster_id : "-", node_id(ci->leader_id), ci->term,
               ci->commit_index);
        ldg_ctl_table_print(&t, stdout);
    }
    ldg_ctl_table_free(&t);
    ldg_ctl_reply_clear(&r);
    return LDG_CTL_EXIT_OK;
}

/* ---- node info / leave ---- */

static const struct ldg_ctl_col node_cols[] = {
    {"node_id", LDG_CTL_STR},         {"address", LDG_CTL_STR},  {"cluster_id", LDG_CTL_STR},
    {"is_cluster_member", LDG_CTL_BOOL}, {"role", LDG_CTL_STR},  {"is_leader", LDG_CTL_BOOL},
    {"leader_id", LDG_CTL_STR},       {"term", LDG_CTL_NUM},     {"applied_index", LDG_CTL_NUM},
    {"version", LDG_CTL_STR},
};

int ldg_ctl_cmd_node_info(struct ldg_ctl *ctl, int argc, char **argv)
{
    int rc = no_args("node info", argc, argv);
    if (rc != 0)
        return rc;
    Ledger__V1__GetNodeInfoRequest req = LEDGER__V1__GET_NODE_INFO_REQUEST__INIT;
    struct ldg_ctl_reply r;
    if (ldg_ctl_call_checked(ctl, NULL, "AdminService/GetNodeInfo", &req.base,
                             &ledger__v1__get_node_info_response__descriptor, &r) != 0) {
        return LDG_CTL_EXIT_FAIL;
    }
    const Ledger__V1__GetNodeInfoResponse *ni = (void *)r.resp;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, node_cols, sizeof node_cols / sizeof node_cols[0]);
    ldg_ctl_cell(&t, "%s", node_id(ni->node_id));
    ldg_ctl_cell(&t, "%s", ni->address);
    ldg_ctl_cell(&t, "%s", ni->cluster_id);
    ldg_ctl_cell(&t, "%s", ni->is_cluster_member ? "true" : "false");
    ldg_ctl_cell(&t, "%s", ROLE(ni->role));
    ldg_ctl_cell(&t, "%s", ni->is_leader ? "true" : "false");
    ldg_ctl_cell(&t, "%s", node_id(ni->leader_id));
    ldg_ctl_cell(&t, "%" PRIu64, ni->term);
    ldg_ctl_cell(&t, "%" PRIu64, ni->applied_index);
    ldg_ctl_cell(&t, "%s", ni->version);
    emit_record(ctl, &t);
    ldg_ctl_table_free(&t);
    ldg_ctl_reply_clear(&r);
    return LDG_CTL_EXIT_OK;
}

static const struct ldg_ctl_col leave_cols[] = {
    {"node_id", LDG_CTL_STR}, {"success", LDG_CTL_BOOL}, {"message", LDG_CTL_STR}};

int ldg_ctl_cmd_node_leave(struct ldg_ctl *ctl, int argc, char **argv)
{
    if (argc != 1 || argv[0][0] == '-')
        return ldg_ctl_usage_error("node leave", argc == 0 ? "node leave needs NODE_ID"
                                                           : "node leave takes one NODE_ID");
    Ledger__V1__NodeId id = LEDGER__V1__NODE_ID__INIT;
    Ledger__V1__LeaveClusterRequest req = LEDGER__V1__LEAVE_CLUSTER_REQUEST__INIT;
    id.id = argv[0];
    req.node_id = &id;
    struct ldg_ctl_reply r;
    if (ldg_ctl_call_checked(ctl, NULL, "AdminService/LeaveCluster", &req.base,
                             &ledger__v1__leave_cluster_response__descriptor, &r) != 0) {
        return LDG_CTL_EXIT_FAIL;
    }
    const Ledger__V1__LeaveClusterResponse *lr = (void *)r.resp;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, leave_cols, 3);
    ldg_ctl_cell(&t, "%s", argv[0]);
    ldg_ctl_cell(&t, "%s", lr->success ? "true" : "false");
    ldg_ctl_cell(&t, "%s", lr->message);
    emit_record(ctl, &t);
    int rc = lr->success ? LDG_CTL_EXIT_OK : LDG_CTL_EXIT_FAIL;
    ldg_ctl_table_free(&t);
    ldg_ctl_reply_clear(&r);
    return rc;
}

/* ---- org list / vault list ---- */

static const struct ldg_ctl_col org_cols[] = {
    {"slug", LDG_CTL_NUM},       {"name", LDG_CTL_STR},       {"status", LDG_CTL_STR},
    {"vault_count", LDG_CTL_NUM}, {"created_at", LDG_CTL_STR},
};

int ldg_ctl_cmd_org_list(struct ldg_ctl *ctl, int argc, char **argv)
{
    int rc = no_args("org list", argc, argv);
    if (rc != 0)
        return rc;
    struct ldg_ctl_orgs orgs;
    if (ldg_ctl_list_orgs(ctl, NULL, &orgs) != 0)
        return LDG_CTL_EXIT_FAIL;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, org_cols, 5);
    for (size_t i = 0; i < orgs.n; i++) {
        const Ledger__V1__OrganizationInfo *o = orgs.orgs[i];
        char ts[32];
        ldg_ctl_cell(&t, "%" PRIu64, o->slug ? o->slug->id : 0);
        ldg_ctl_cell(&t, "%s", o->name);
        ldg_ctl_cell(&t, "%s", ldg_ctl_enum_name(&ledger__v1__organization_status__descriptor,
                                                 (int)o->status, "ORGANIZATION_STATUS_"));
        ldg_ctl_cell(&t, "%" PRIu64, o->vault_count);
        ldg_ctl_cell(&t, "%s", ldg_ctl_time(o->created_at, ts));
    }
    emit(ctl, &t);
    ldg_ctl_table_free(&t);
    ldg_ctl_orgs_free(&orgs);
    return LDG_CTL_EXIT_OK;
}

static uint64_t vault_org(const Ledger__V1__VaultInfo *v)
{
    return v->organization_slug ? v->organization_slug->id : 0;
}

static uint64_t vault_slug(const Ledger__V1__VaultInfo *v)
{
    return v->vault ? v->vault->slug : 0;
}

static const struct ldg_ctl_col vault_cols[] = {
    {"organization", LDG_CTL_NUM}, {"vault", LDG_CTL_NUM}, {"name", LDG_CTL_STR},
    {"height", LDG_CTL_NUM},       {"status", LDG_CTL_STR}, {"leader", LDG_CTL_STR},
    {"state_root", LDG_CTL_STR},
};

int ldg_ctl_cmd_vault_list(struct ldg_ctl *ctl, int argc, char **argv)
{
    uint64_t org = 0;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int m = flag_value(argc, argv, &i, "--org", &v);
        if (m < 0)
            return ldg_ctl_usage_error("vault list", "--org needs a value");
        if (m == 0)
            return ldg_ctl_usage_error("vault list", "unexpected argument \"%s\"", argv[i]);
        if (!ldg_ctl_parse_u64(v, &org) || org == 0)
            return ldg_ctl_usage_error("vault list", "--org wants an organization slug, got \"%s\"",
                                       v);
    }
    Ledger__V1__ListVaultsResponse *lv = NULL;
    if (ldg_ctl_list_vaults(ctl, NULL, org, &lv) != 0)
        return LDG_CTL_EXIT_FAIL;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, vault_cols, 7);
    for (size_t i = 0; i < lv->n_vaults; i++) {
        const Ledger__V1__VaultInfo *v = lv->vaults[i];
        char hex[65];
        ldg_ctl_cell(&t, "%" PRIu64, vault_org(v));
        ldg_ctl_cell(&t, "%" PRIu64, vault_slug(v));
        ldg_ctl_cell(&t, "%s", v->name);
        if (v->optional_height_case == LEDGER__V1__VAULT_INFO__OPTIONAL_HEIGHT_HEIGHT)
            ldg_ctl_cell(&t, "%" PRIu64, v->height);
        else
            ldg_ctl_cell(&t, "-");
        ldg_ctl_cell(&t, "%s", ldg_ctl_enum_name(&ledger__v1__vault_status__descriptor,
                                                 (int)v->status, "VAULT_STATUS_"));
        ldg_ctl_cell(&t, "%s", node_id(v->leader));
        ldg_ctl_cell(&t, "%s", ldg_ctl_hash_hex(v->state_root, hex));
    }
    emit(ctl, &t);
    ldg_ctl_table_free(&t);
    protobuf_c_message_free_unpacked(&lv->base, NULL);
    return LDG_CTL_EXIT_OK;
}

/* ---- chain selection shared by tip and integrity ---- */

void ldg_ctl_chains_free(struct ldg_ctl_chains *c)
{
    free(c->v);
    ldg_ctl_orgs_free(&c->orgs);
    if (c->lv != NULL)
        protobuf_c_message_free_unpacked(&c->lv->base, NULL);
    memset(c, 0, sizeof *c);
}

void ldg_ctl_chains_add(struct ldg_ctl_chains *c, uint64_t org, uint64_t vault, const char *name)
{
    c->v = ldg_realloc(c->v, (c->n + 1) * sizeof *c->v);
    c->v[c->n++] = (struct ldg_ctl_chain){.org = org, .vault = vault, .name = name};
}

int ldg_ctl_all_chains(struct ldg_ctl *ctl, const char *addr, bool with_orgs, struct ldg_ctl_chains *out)
{
    memset(out, 0, sizeof *out);
    if (ldg_ctl_list_orgs(ctl, addr, &out->orgs) != 0 ||
        ldg_ctl_list_vaults(ctl, addr, 0, &out->lv) != 0) {
        ldg_ctl_chains_free(out);
        return -1;
    }
    size_t vi = 0;
    for (size_t i = 0; i < out->orgs.n; i++) {
        const Ledger__V1__OrganizationInfo *o = out->orgs.orgs[i];
        uint64_t slug = o->slug ? o->slug->id : 0;
        while (vi < out->lv->n_vaults && vault_org(out->lv->vaults[vi]) < slug) {
            ldg_ctl_chains_add(out, vault_org(out->lv->vaults[vi]), vault_slug(out->lv->vaults[vi]),
                       out->lv->vaults[vi]->name);
            vi++;
        }
        if (with_orgs && o->status != LEDGER__V1__ORGANIZATION_STATUS__ORGANIZATION_STATUS_DELETED)
            ldg_ctl_chains_add(out, slug, 0, o->name);
    }
    for (; vi < out->lv->n_vaults; vi++)
        ldg_ctl_chains_add(out, vault_org(out->lv->vaults[vi]), vault_slug(out->lv->vaults[vi]),
                   out->lv->vaults[vi]->name);
    return 0;
}

/* Parses "--all | --org N [--vault V]" plus |extra| boolean flag (may be
 * NULL). Returns 0, or a usage exit status. */
static int parse_selection(const char *cmd, int argc, char **argv, bool *all, uint64_t *org,
                           uint64_t *vault, const char *extra, bool *extra_set)
{
    bool have_org = false, have_vault = false;
    *all = false;
    *org = *vault = 0;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (strcmp(argv[i], "--all") == 0) {
            *all = true;
        } else if (extra != NULL && strcmp(argv[i], extra) == 0) {
            *extra_set = true;
        } else if ((m = flag_value(argc, argv, &i, "--org", &v)) != 0) {
            if (m < 0 || !ldg_ctl_parse_u64(v, org) || *org == 0)
                return ldg_ctl_usage_error(cmd, "--org wants an organization slug");
            have_org = true;
        } else if ((m = flag_value(argc, argv, &i, "--vault", &v)) != 0) {
            if (m < 0 || !ldg_ctl_parse_u64(v, vault))
                return ldg_ctl_usage_error(cmd, "--vault wants a vault slug");
            have_vault = true;
        } else {
            return ldg_ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[i]);
        }
    }
    if (*all && (have_org || have_vault))
        return ldg_ctl_usage_error(cmd, "--all cannot be combined with --org/--vault");
    if (!*all && !have_org)
        return ldg_ctl_usage_error(cmd, "give --all or --org N");
    return 0;
}

/* ---- tip ---- */

static const struct ldg_ctl_col tip_cols[] = {
    {"organization", LDG_CTL_NUM}, {"vault", LDG_CTL_NUM},      {"name", LDG_CTL_STR},
    {"height", LDG_CTL_NUM},       {"block_hash", LDG_CTL_STR}, {"state_root", LDG_CTL_STR},
};

int ldg_ctl_cmd_tip(struct ldg_ctl *ctl, int argc, char **argv)
{
    bool all;
    uint64_t org, vault;
    int rc = parse_selection("tip", argc, argv, &all, &org, &vault, NULL, NULL);
    if (rc != 0)
        return rc;
    struct ldg_ctl_chains cs;
    if (all) {
        if (ldg_ctl_all_chains(ctl, NULL, true, &cs) != 0)
            return LDG_CTL_EXIT_FAIL;
    } else {
        memset(&cs, 0, sizeof cs);
        ldg_ctl_chains_add(&cs, org, vault, "");
    }
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, tip_cols, 6);
    rc = LDG_CTL_EXIT_OK;
    for (size_t i = 0; i < cs.n; i++) {
        Ledger__V1__GetTipRequest req = LEDGER__V1__GET_TIP_REQUEST__INIT;
        Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
        Ledger__V1__VaultSlug vs = LEDGER__V1__VAULT_SLUG__INIT;
        os.id = cs.v[i].org;
        req.organization_slug = &os;
        if (cs.v[i].vault != 0) {
            vs.slug = cs.v[i].vault;
            req.vault = &vs;
        }
        struct ldg_ctl_reply r;
        if (ldg_ctl_call(ctl, NULL, "ReadService/GetTip", &req.base,
                         &ledger__v1__get_tip_response__descriptor, &r) != 0) {
            char what[96];
            snprintf(what, sizeof what, "GetTip(organization %" PRIu64 ", vault %" PRIu64 ")",
                     cs.v[i].org, cs.v[i].vault);
            ldg_ctl_report(what, &r);
            ldg_ctl_reply_clear(&r);
            rc = LDG_CTL_EXIT_FAIL;
            continue;
        }
        const Ledger__V1__GetTipResponse *tip = (void *)r.resp;
        char h1[65], h2[65];
        ldg_ctl_cell(&t, "%" PRIu64, cs.v[i].org);
        ldg_ctl_cell(&t, "%" PRIu64, cs.v[i].vault);
        ldg_ctl_cell(&t, "%s", cs.v[i].name);
        if (tip->optional_height_case == LEDGER__V1__GET_TIP_RESPONSE__OPTIONAL_HEIGHT_HEIGHT)
            ldg_ctl_cell(&t, "%" PRIu64, tip->height);
        else
            ldg_ctl_cell(&t, "-");
        ldg_ctl_cell(&t, "%s", ldg_ctl_hash_hex(tip->block_hash, h1));
        ldg_ctl_cell(&t, "%s", ldg_ctl_hash_hex(tip->state_root, h2));
        ldg_ctl_reply_clear(&r);
    }
    if (t.n_rows > 0 || rc == LDG_CTL_EXIT_OK)
        emit(ctl, &t);
    ldg_ctl_table_free(&t);
    ldg_ctl_chains_free(&cs);
    return rc;
}

/* ---- integrity ---- */

static const struct ldg_ctl_col integ_cols[] = {
    {"organization", LDG_CTL_NUM},   {"vault", LDG_CTL_NUM},  {"name", LDG_CTL_STR},
    {"healthy", LDG_CTL_BOOL},       {"blocks_checked", LDG_CTL_NUM}, {"issues", LDG_CTL_NUM},
    {"detail", LDG_CTL_STR},
};

int ldg_ctl_cmd_integrity(struct ldg_ctl *ctl, int argc, char **argv)
{
    bool all, full = false;
    uint64_t org, vault;
    int rc = parse_selection("integrity", argc, argv, &all, &org, &vault, "--full", &full);
    if (rc != 0)
        return rc;
    struct ldg_ctl_chains cs;
    if (all) {
        if (ldg_ctl_all_chains(ctl, NULL, true, &cs) != 0)
            return LDG_CTL_EXIT_FAIL;
    } else {
        memset(&cs, 0, sizeof cs);
        ldg_ctl_chains_add(&cs, org, vault, "");
    }
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, integ_cols, 7);
    size_t bad = 0;
    for (size_t i = 0; i < cs.n; i++) {
        Ledger__V1__CheckIntegrityRequest req = LEDGER__V1__CHECK_INTEGRITY_REQUEST__INIT;
        Ledger__V1__OrganizationSlug os = LEDGER__V1__ORGANIZATION_SLUG__INIT;
        Ledger__V1__VaultSlug vs = LEDGER__V1__VAULT_SLUG__INIT;
        os.id = cs.v[i].org;
        vs.slug = cs.v[i].vault;
        req.organization_slug = &os;
        req.vault = &vs;
        req.full_check = full;
        struct ldg_ctl_reply r;
        ldg_ctl_cell(&t, "%" PRIu64, cs.v[i].org);
        ldg_ctl_cell(&t, "%" PRIu64, cs.v[i].vault);
        ldg_ctl_cell(&t, "%s", cs.v[i].name);
        if (ldg_ctl_call(ctl, NULL, "AdminService/CheckIntegrity", &req.base,
                         &ledger__v1__check_integrity_response__descriptor, &r) != 0) {
            char what[112];
            snprintf(what, sizeof what,
                     "CheckIntegrity(organization %" PRIu64 ", vault %" PRIu64 ")", cs.v[i].org,
                     cs.v[i].vault);
            ldg_ctl_report(what, &r);
            ldg_ctl_cell(&t, "false");
            ldg_ctl_cell(&t, "0");
            ldg_ctl_cell(&t, "0");
            ldg_ctl_cell(&t, "CheckIntegrity failed: %s: %s", ldg_grpc_code_name(r.code),
                         r.message);
            ldg_ctl_reply_clear(&r);
            bad++;
            continue;
        }
        const Ledger__V1__CheckIntegrityResponse *ci = (void *)r.resp;
        ldg_ctl_cell(&t, "%s", ci->healthy ? "true" : "false");
        ldg_ctl_cell(&t, "%" PRIu64, ci->blocks_checked);
        ldg_ctl_cell(&t, "%zu", ci->n_issues);
        if (ci->n_issues > 0)
            ldg_ctl_cell(&t, "height %" PRIu64 " %s: %s%s", ci->issues[0]->block_height,
                         ci->issues[0]->issue_type, ci->issues[0]->description,
                         ci->n_issues > 1 ? " (and more)" : "");
        else
            ldg_ctl_cell(&t, "%s", ci->healthy ? "ok" : "unhealthy");
        if (!ci->healthy)
            bad++;
        ldg_ctl_reply_clear(&r);
    }
    emit(ctl, &t);
    if (!ctl->json)
        printf("\n%zu chain(s) checked (%s), %zu unhealthy\n", cs.n, full ? "full" : "quick", bad);
    ldg_ctl_table_free(&t);
    ldg_ctl_chains_free(&cs);
    return bad ? LDG_CTL_EXIT_FAIL : LDG_CTL_EXIT_OK;
}

/* ---- backups ---- */

static const struct ldg_ctl_col backup_cols[] = {
    {"backup_id", LDG_CTL_STR},    {"created_at", LDG_CTL_STR}, {"tag", LDG_CTL_STR},
    {"applied_index", LDG_CTL_NUM}, {"size_bytes", LDG_CTL_NUM}, {"checksum", LDG_CTL_STR},
    {"backup_path", LDG_CTL_STR},
};

static void backup_row(struct ldg_ctl_table *t, const Ledger__V1__BackupInfo *b)
{
    char ts[32];
    ldg_ctl_cell(t, "%s", b->backup_id);
    ldg_ctl_cell(t, "%s", ldg_ctl_time(b->created_at, ts));
    ldg_ctl_cell(t, "%s", b->tag);
    ldg_ctl_cell(t, "%" PRIu64, b->applied_index);
    ldg_ctl_cell(t, "%" PRIu64, b->size_bytes);
    ldg_ctl_cell(t, "%s", b->checksum);
    ldg_ctl_cell(t, "%s", b->backup_path);
}

int ldg_ctl_cmd_backup_create(struct ldg_ctl *ctl, int argc, char **argv)
{
    Ledger__V1__CreateBackupRequest req = LEDGER__V1__CREATE_BACKUP_REQUEST__INIT;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int m = flag_value(argc, argv, &i, "--tag", &v);
        if (m < 0)
            return ldg_ctl_usage_error("backup create", "--tag needs a value");
        if (m == 0)
            return ldg_ctl_usage_error("backup create", "unexpected argument \"%s\"", argv[i]);
        req.tag = (char *)v;
    }
    struct ldg_ctl_reply r;
    if (ldg_ctl_call_checked(ctl, NULL, "AdminService/CreateBackup", &req.base,
                             &ledger__v1__backup_info__descriptor, &r) != 0) {
        return LDG_CTL_EXIT_FAIL;
    }
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, backup_cols, 7);
    backup_row(&t, (void *)r.resp);
    emit_record(ctl, &t);
    ldg_ctl_table_free(&t);
    ldg_ctl_reply_clear(&r);
    return LDG_CTL_EXIT_OK;
}

int ldg_ctl_cmd_backup_list(struct ldg_ctl *ctl, int argc, char **argv)
{
    int rc = no_args("backup list", argc, argv);
    if (rc != 0)
        return rc;
    struct ldg_ctl_table t;
    ldg_ctl_table_init(&t, backup_cols, 7);
    char *token = ldg_strdup("");
    rc = LDG_CTL_EXIT_OK;
    for (;;) {
        Ledger__V1__ListBackupsRequest req = LEDGER__V1__LIST_BACKUPS_REQUEST__INIT;
        req.limit = 1000;
        req.page_token = token;
        struct ldg_ctl_reply r;
        if (ldg_ctl_call_checked(ctl, NULL, "AdminService/ListBackups", &req.base,
                                 &ledger__v1__list_backups_response__descriptor, &r) != 0) {
            rc = LDG_CTL_EXIT_FAIL;
            break;
        }
        const Ledger__V1__ListBackupsResponse *lb = (void *)r.resp;
        for (size_t i = 0; i < lb->n_backups; i++)
            backup_row(&t, lb->backups[i]);
        bool more = lb->next_page_token[0] != '\0' && lb->n_backups > 0;
        free(token);
        token = ldg_strdup(lb->next_page_token);
        ldg_ctl_reply_clear(&r);
        if (!more)
            break;
    }
    free(token);
    if (rc == LDG_CTL_EXIT_OK)
        emit(ctl, &t);
    ldg_ctl_table_free(&t);
    return rc;
}
