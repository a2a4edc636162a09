#include <stdio.h>
#include "labyrinth.h"
int main(void) { printf("labyrinth %s\n", LAB_VERSION_STRING); return 0; }
