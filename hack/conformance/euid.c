/*
 * Installed setuid root in the nonewprivs conformance image: it reports the effective uid it
 * runs with, which is 0 when the kernel honoured the setuid bit and the caller's uid when
 * no_new_privs was set on the container.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
