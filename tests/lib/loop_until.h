/* Run a libuv loop until a condition holds, failing the test (cmocka) when
 * it still does not hold after a timeout, instead of hanging.
 *
 * Header-only (static inline) so that it is not linked into every test
 * binary. Must be included after <cmocka.h> and <uv.h>. */
#ifndef LDG_TESTS_LOOP_UNTIL_H
#define LDG_TESTS_LOOP_UNTIL_H

#include <stdbool.h>
#include <stdint.h>

static inline void loop_until_timeout_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run |loop| until |pred| holds; fail the test after |ms|. */
static inline void loop_run_until(uv_loop_t *loop, int (*pred)(void), uint64_t ms)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, loop_until_timeout_cb, ms, 0);
    while (!pred() && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_true(pred());
}

/* Run |loop| until *flag is true or |ms| passed; returns *flag (the caller
 * asserts, so it can say what it waited for). */
static inline bool loop_wait_flag(uv_loop_t *loop, const bool *flag, uint64_t ms)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, loop_until_timeout_cb, ms, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

#endif
