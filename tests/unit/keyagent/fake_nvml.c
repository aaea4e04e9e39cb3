/* A stand-in for libnvidia-ml.so.1 with one Hopper GPU in CC mode, so the dlopen path and the
 * evidence shapes can be tested without a GPU. FAKE_NVML_CC_OFF=1 turns CC mode off. */
#include <stdlib.h>
#include <string.h>

typedef struct {
  unsigned environment, cc_feature, dev_tools_mode;
} State;
typedef struct {
  unsigned cert_chain_size, attestation_cert_chain_size;
  unsigned char cert_chain[0x1000], attestation_cert_chain[0x1400];
} Cert;
typedef struct {
  unsigned is_cec_present, report_size, cec_size;
  unsigned char nonce[32], report[0x2000], cec[0x1000];
} Report;

static unsigned ready_state;

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char* nvmlErrorString(int rc) { return rc == 0 ? "Success" : "Fake error"; }
int nvmlSystemGetConfComputeState(State* s) {
  s->environment = 1;
  s->cc_feature = getenv("FAKE_NVML_CC_OFF") ? 0 : 1;
  s->dev_tools_mode = 0;
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned* n) {
  *n = 1;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void** device) {
  *device = (void*)(unsigned long)(0x1000 + i);
  return 0;
}
int nvmlDeviceGetUUID(void* d, char* buf, unsigned len) {
  (void)d;
  strncpy(buf, "GPU-fake-0", len);
  return 0;
}
int nvmlDeviceGetName(void* d, char* buf, unsigned len) {
  (void)d;
  strncpy(buf, "NVIDIA H20", len);
  return 0;
}
int nvmlDeviceGetArchitecture(void* d, unsigned* arch) {
  (void)d;
  *arch = 9; /* Hopper */
  return 0;
}
int nvmlSystemGetDriverVersion(char* buf, unsigned len) {
  strncpy(buf, "550.54.15", len);
  return 0;
}
int nvmlDeviceGetVbiosVersion(void* d, char* buf, unsigned len) {
  (void)d;
  strncpy(buf, "96.00.5E.00.01", len);
  return 0;
}
int nvmlDeviceGetConfComputeGpuCertificate(void* d, Cert* c) {
  (void)d;
  memcpy(c->cert_chain, "CERTCHAIN", 9);
  c->cert_chain_size = 9;
  memcpy(c->attestation_cert_chain, "ATTCHAIN", 8);
  c->attestation_cert_chain_size = 8;
  return 0;
}
int nvmlDeviceGetConfComputeGpuAttestationReport(void* d, Report* r) {
  (void)d;
  /* SPDM GET_MEASUREMENTS request header, then the caller's nonce, as real reports start. */
  static const unsigned char head[4] = {0x11, 0xe0, 0x01, 0xff};
  memcpy(r->report, head, 4);
  memcpy(r->report + 4, r->nonce, 32);
  r->report_size = 40;
  return 0;
}
int nvmlSystemGetConfComputeGpusReadyState(unsigned* ready) {
  *ready = ready_state;
  return 0;
}
int nvmlSystemSetConfComputeGpusReadyState(unsigned ready) {
  ready_state = ready;
  return 0;
}
