#include "node/notify.h"

#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "util/log.h"

void ldg_notify_ready(const char *status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    int rv = sd_notify(0, msg);
    if (rv < 0)
        LDG_LOG(LDG_LOG_WARN, "node", "sd_notify READY failed: %d", rv);
}

void ldg_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}
