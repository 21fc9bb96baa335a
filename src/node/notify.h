/* systemd readiness (Type=notify, SPEC §10): tell the service manager when
 * the node serves and when it stops. No-ops when not started by systemd
 * (no NOTIFY_SOCKET in the environment). */
#ifndef LDG_NODE_NOTIFY_H
#define LDG_NODE_NOTIFY_H

/* READY=1 with a one-line STATUS=. */
void ldg_notify_ready(const char *status);
/* STOPPING=1: a graceful stop began. */
void ldg_notify_stopping(void);

#endif
