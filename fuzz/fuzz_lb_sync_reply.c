/*
 * The controller's answer to sky-lb's sync (lb_sync_parse_reply), then each
 * replica URL in it through lb_parse_url, as lb_snapshot_from_urls does: the
 * ready set comes from the network, so no input may crash, leak or produce a
 * URL that is not canonical.
 */
#define FUZZ_NO_DNS
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "lb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size + 1);
    memcpy(body, data, size);
    body[size] = 0;
    char **urls = NULL;
    size_t n = 0;
    if (lb_sync_parse_reply(body, &urls, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            struct sockaddr_storage ss;
            char norm[LB_URL_MAX];
            if (lb_parse_url(urls[i], &ss, norm, sizeof(norm)) == 0) {
                FUZZ_CHECK(strncmp(norm, "http://", 7) == 0);
                FUZZ_CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
                /* canonical: parsing it again gives itself */
                char again[LB_URL_MAX];
                FUZZ_CHECK(lb_parse_url(norm, &ss, again, sizeof(again)) == 0);
                FUZZ_CHECK(strcmp(norm, again) == 0);
            }
            free(urls[i]);
        }
        free(urls);
    } else {
        FUZZ_CHECK(urls == NULL && n == 0);
    }
    free(body);
    return 0;
}
