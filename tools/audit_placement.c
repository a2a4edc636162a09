/* audit_placement.c - placeholder until the placement part lands: it fails loudly. */
#include "audit.h"

int audit_placement(const struct audit_opts *o)
{
	(void)o;
	return audit_line("--", false, "placement part", "not implemented yet");
}
