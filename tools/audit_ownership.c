/* audit_ownership.c - placeholder until the ownership part lands: it fails loudly. */
#include "audit.h"

int audit_ownership(const struct audit_opts *o)
{
	(void)o;
	return audit_line("--", false, "ownership part", "not implemented yet");
}

int audit_colour(const struct audit_opts *o)
{
	(void)o;
	return audit_line("P6", false, "colour part", "not implemented yet");
}
