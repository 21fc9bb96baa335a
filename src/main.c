/* inferadb-ledger: wiring only. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("inferadb-ledger %s\n", LDG_VERSION);
        return 0;
    }
    fprintf(stderr, "inferadb-ledger: not wired yet\n");
    return 1;
}
