/*
 * The web server of the conformance images that critest knows as nginx: an HTTP/1.0 server
 * on the port given as its only argument (default 80), on IPv4 and IPv6.
 *
 * critest looks at it the way it would look at nginx, so it imitates what it checks:
 *   - /proc/<pid>/cmdline starts with "nginx: master process" (nginx retitles itself so);
 *   - `pidof nginx` finds it (the binary is installed as /usr/sbin/nginx, comm is "nginx");
 *   - its pid is written to /var/run/nginx.pid once it listens.
 * Every GET answers 200 with a small page. Connections are served one at a time, each with
 * a short receive timeout, which is plenty for a test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TITLE "nginx: master process nginx"
#define PID_FILE "/var/run/nginx.pid"

static const char page[] = "<html><body><h1>Welcome to nginx!</h1></body></html>\n";

/* Re-execute under the title nginx shows, once: argv[0] is what /proc/<pid>/cmdline begins with. */
static void retitle(int argc, char **argv) {
    if (strcmp(argv[0], TITLE) == 0) return;
    char *args[] = {TITLE, argc > 1 ? argv[1] : NULL, NULL};
    execv("/proc/self/exe", args);
    perror("re-exec under the nginx title");
}

static int listen_on(int port) {
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off); /* IPv4 too, as ::ffff:a.b.c.d */
    struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || listen(fd, 128) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void write_pid_file(void) {
    FILE *file = fopen(PID_FILE, "w");
    if (file == NULL) {
        perror(PID_FILE);
        return;
    }
    fprintf(file, "%d\n", (int)getpid());
    fclose(file);
}

/* Read until the blank line that ends the request head (or timeout, or 8 KiB), then answer. */
static void serve(int client) {
    struct timeval timeout = {.tv_sec = 5};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char request[8192];
    size_t used = 0;
    while (used < sizeof request - 1) {
        ssize_t got = read(client, request + used, sizeof request - 1 - used);
        if (got <= 0) break;
        used += (size_t)got;
        request[used] = '\0';
        if (strstr(request, "\r\n\r\n") != NULL || strstr(request, "\n\n") != NULL) break;
    }
    char head[256];
    int length = snprintf(head, sizeof head,
                          "HTTP/1.0 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          sizeof page - 1);
    if (write(client, head, (size_t)length) == length) (void)!write(client, page, sizeof page - 1);
    close(client);
}

/* As a container's pid 1 it gets no default signal actions: stopping must be asked for. */
static void stop(int signal_number) {
    (void)signal_number;
    _exit(0);
}

int main(int argc, char **argv) {
    retitle(argc, argv);
    prctl(PR_SET_NAME, "nginx", 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGQUIT, stop);

    int port = argc > 1 ? atoi(argv[1]) : 80;
    int server = listen_on(port);
    if (server < 0) {
        fprintf(stderr, "cannot listen on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    write_pid_file();
    printf("nginx: listening on port %d\n", port);
    fflush(stdout);

    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client >= 0) serve(client);
    }
}
