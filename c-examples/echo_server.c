/*
 * An echo server on fd readiness, and its clients, all C tasks in one
 * program: non-blocking sockets, and spindle_fd_wait where a call would
 * block. The server serves CLIENTS connections, one task per connection in
 * a task group, then exits. Each connection "processes" its message for
 * 0.2 s (simulated with spindle_sleep), so the 20 clients are served in
 * ~0.2 s, not 4 s; and the server logs every connection to a file through
 * spindle_to_thread, because file I/O blocks.
 *
 * errno is read right after the call that set it, before any blocking
 * spindle call: errno is thread-local, and a task may resume on another
 * thread after a blocking call.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CLIENTS = 20 };

static int set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Writes all of buf, waiting for room; 0 or a failure code. MSG_NOSIGNAL:
 * a peer that went away gives EPIPE, not a SIGPIPE that kills the process. */
static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = spindle_fd_wait(fd, SPINDLE_WRITABLE, 5.0, NULL);
            if (rc != 0)
                return rc;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return 1; /* our own code: an I/O error */
        }
    }
    return 0;
}

/* Reads what is there, waiting for data: the byte count (0 at end of
 * stream), or a negative spindle code, or -100 for an I/O error. */
static ssize_t read_some(int fd, char *buf, size_t cap) {
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = spindle_fd_wait(fd, SPINDLE_READABLE, 5.0, NULL);
            if (rc != 0)
                return rc;
        } else if (errno != EINTR) {
            return -100;
        }
    }
}

/* ---- the server ---------------------------------------------------------- */

static FILE *log_file;
static char log_slots[CLIENTS][256];
static atomic_int log_slots_used;

/* Runs on the blocking pool (spindle_to_thread): ordinary blocking I/O. */
static void *log_line(void *arg) {
    fprintf(log_file, "served: %s", (const char *)arg);
    fflush(log_file);
    return arg;
}

static int handle_connection(void *arg, void **result) {
    int fd = PTR_TO_INT(arg);
    (void)result;
    char buf[256];
    size_t used = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read_some(fd, buf + used, sizeof buf - 1 - used);
        if (n < 0) {
            rc = n == -100 ? 1 : (int)n;
            break;
        }
        if (n == 0)
            break; /* the client is done sending */
        used += (size_t)n;
        if (used == sizeof buf - 1)
            break;
    }
    if (rc == 0) {
        buf[used] = '\0';
        rc = spindle_sleep(0.2); /* process the request */
    }
    if (rc == 0)
        rc = write_all(fd, buf, used);
    if (rc == 0) {
        /* The function may outlive this call if the task is cancelled while
         * it runs (a thread cannot be interrupted): give it memory that
         * lives as long as the program, not this task's stack. */
        int slot = atomic_fetch_add(&log_slots_used, 1);
        if (slot < CLIENTS) {
            memcpy(log_slots[slot], buf, used + 1);
            rc = spindle_to_thread(log_line, log_slots[slot], NULL);
        }
    }
    close(fd);
    return rc;
}

struct server_arg {
    int listener;
    int served;
};

static int server(void *arg, void **result) {
    struct server_arg *s = arg;
    (void)result;
    spindle_group *group;
    int rc = spindle_group_new(&group);
    if (rc != 0)
        return rc;
    spindle_task *handlers[CLIENTS];
    int status = 0;
    while (s->served < CLIENTS) {
        int fd = accept(s->listener, NULL, NULL);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                status = spindle_fd_wait(s->listener, SPINDLE_READABLE, 10.0, NULL);
                if (status != 0)
                    break;
                continue;
            }
            status = 1;
            break;
        }
        if (set_nonblocking(fd) != 0) {
            close(fd);
            status = 1;
            break;
        }
        status = spindle_group_spawn(group, handle_connection, INT_TO_PTR(fd), "connection",
                                     &handlers[s->served]);
        if (status != 0) {
            close(fd);
            break;
        }
        s->served++;
    }
    rc = spindle_group_wait(group, status); /* every connection handled */
    spindle_group_free(group);
    for (int i = 0; i < s->served; i++)
        spindle_task_free(handlers[i]);
    return rc;
}

/* ---- the clients ---------------------------------------------------------- */

static atomic_int echoed;

static int client(void *arg, void **result) {
    int port = PTR_TO_INT(arg) >> 8;
    int id = PTR_TO_INT(arg) & 0xff;
    (void)result;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || set_nonblocking(fd) != 0)
        return 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno != EINPROGRESS) {
            close(fd);
            return 1;
        }
        rc = spindle_fd_wait(fd, SPINDLE_WRITABLE, 5.0, NULL); /* connected, or failed */
        int error = 0;
        socklen_t len = sizeof error;
        if (rc == 0 && (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0))
            rc = 1;
    }
    char message[64], reply[64];
    int length = snprintf(message, sizeof message, "hello from client %d\n", id);
    if (rc == 0)
        rc = write_all(fd, message, (size_t)length);
    if (rc == 0)
        shutdown(fd, SHUT_WR);
    size_t got = 0;
    while (rc == 0 && got < sizeof reply - 1) {
        ssize_t n = read_some(fd, reply + got, sizeof reply - 1 - got);
        if (n < 0)
            rc = n == -100 ? 1 : (int)n;
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != 0)
        return rc;
    reply[got] = '\0';
    if (strcmp(reply, message) != 0) {
        fprintf(stderr, "client %d: got %s", id, reply);
        return 2;
    }
    atomic_fetch_add(&echoed, 1);
    return 0;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(listener >= 0);
    if (listener < 0)
        return 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0; /* any free port */
    socklen_t len = sizeof addr;
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(listener, 128) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &len) != 0 ||
        set_nonblocking(listener) != 0) {
        perror("listener");
        close(listener);
        return 1;
    }
    int port = ntohs(addr.sin_port);
    printf("-- an echo server on 127.0.0.1:%d, %d clients --\n", port, CLIENTS);

    double start = now();
    struct server_arg s = {listener, 0};
    spindle_task *server_task;
    CHECK_RC(spindle_spawn(server, &s, "echo-server", &server_task), 0);

    spindle_group *clients;
    CHECK_RC(spindle_group_new(&clients), 0);
    spindle_task *client_tasks[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        CHECK_RC(spindle_group_spawn(clients, client, INT_TO_PTR(port << 8 | i), "client",
                                     &client_tasks[i]),
                 0);
    CHECK_RC(spindle_group_wait(clients, 0), 0);
    CHECK_RC(spindle_group_free(clients), 0);
    for (int i = 0; i < CLIENTS; i++)
        spindle_task_free(client_tasks[i]);
    CHECK_RC(spindle_task_join(server_task, NULL), 0);
    spindle_task_free(server_task);
    double took = now() - start;
    close(listener);

    printf("  %d clients got their echo; the server served %d connections\n",
           atomic_load(&echoed), s.served);
    CHECK(atomic_load(&echoed) == CLIENTS && s.served == CLIENTS);
    int lines = 0;
    rewind(log_file);
    for (int c; (c = fgetc(log_file)) != EOF;)
        lines += c == '\n';
    printf("  the log (written through spindle_to_thread) has %d lines\n", lines);
    CHECK(lines == CLIENTS);
    report_timing("20 connections of 0.2 s each", took, "~0.2 s, not 4 s", 0.2, 1.0);
    return 0;
}

int main(void) {
    example_start("echo server on fd readiness");
    log_file = tmpfile();
    if (log_file == NULL) {
        perror("tmpfile");
        return 1;
    }
    int rc = spindle_run(NULL, main_task, NULL, NULL);
    fclose(log_file);
    return example_finish(rc);
}
