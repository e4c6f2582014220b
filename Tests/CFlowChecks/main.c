/* main.c — ctest's runner: `cflow_checks NAME...` runs the named checks, `--list` lists them. */
#include <stdio.h>
#include <string.h>

#include "cflow_checks.h"

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < flow_check_count(); i++) printf("%s\n", flow_check_name(i));
        return argc < 2 ? 2 : 0;
    }
    int failed = 0;
    for (int a = 1; a < argc; a++) {
        char msg[512];
        int rc = flow_check_run(argv[a], msg, sizeof msg);
        printf("%-22s %s  %s\n", argv[a], rc == 0 ? "PASS" : rc == 2 ? "SKIP" : "FAIL", msg);
        fflush(stdout);
        if (rc == 1) failed = 1;
    }
    return failed;
}
