/*
 * The stack size option and overflow detection. A C task that needs a big
 * stack runs with `spindle_options.stack_size` raised; the same task on the
 * default 256 KiB stack overflows, and the process is stopped with a
 * message that says so (the guard page faults and spindle's handler reports
 * it, or the red-zone canary is found trampled) instead of silently
 * corrupting a neighbouring stack.
 *
 * Each case runs in a child process; the parent checks how it ended. Not
 * run under valgrind or ASan, which handle the fault themselves.
 */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUFFER_SIZE (600 * 1024)

/* Uses BUFFER_SIZE bytes of stack, touched from the top down as a growing
 * stack is (a frame bigger than the guard page that is written bottom-up
 * could jump over it: compile with -fstack-clash-protection to have every
 * page probed in order). */
static int big_frame(void *arg, void **result) {
    (void)arg;
    volatile char buffer[BUFFER_SIZE];
    for (size_t i = sizeof buffer; i >= 512; i -= 512)
        buffer[i - 1] = (char)i;
    int rc = spindle_sleep(0.001); /* switch away and back with the frame live */
    *result = INT_TO_PTR(buffer[511]);
    return rc;
}

/* Runs big_frame on stacks of `stack_size` bytes (0: the default) in a
 * child; returns its wait status, and what it wrote to stderr in `said`. */
static int run_in_child(size_t stack_size, char *said, size_t said_size) {
    fflush(stdout);
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        dup2(pipe_fds[1], 2);
        close(pipe_fds[0]);
        close(pipe_fds[1]);
        spindle_options options;
        spindle_options_init(&options);
        options.workers = 1;
        options.stack_size = stack_size;
        int rc = spindle_run(&options, big_frame, NULL, NULL);
        _exit(rc == 0 ? 0 : 3);
    }
    close(pipe_fds[1]);
    size_t used = 0;
    ssize_t got;
    while (used + 1 < said_size && (got = read(pipe_fds[0], said + used, said_size - 1 - used)) != 0) {
        if (got > 0)
            used += (size_t)got;
        else if (errno != EINTR)
            break;
    }
    said[used] = '\0';
    close(pipe_fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    return status;
}

int main(void) {
    example_start("stack size and overflow detection");

    printf("-- a 600 KiB frame on 1 MiB stacks --\n");
    char said[1024];
    int status = run_in_child(1024 * 1024, said, sizeof said);
    printf("  child: %s %d\n", WIFEXITED(status) ? "exited with" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    printf("-- the same frame on the default 256 KiB stacks --\n");
    status = run_in_child(0, said, sizeof said);
    printf("  child: %s %d\n", WIFEXITED(status) ? "exited with" : "killed by signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    printf("  child said: %s", said);
    /* Reported, then aborted: from the guard page's fault or the red zone. */
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(said, "a C task overflowed its fiber stack") != NULL);
    if (WIFSIGNALED(status) && strstr(said, "overflowed") != NULL)
        printf("  overflow detected: the process stopped\n");
    return example_finish(0);
}
