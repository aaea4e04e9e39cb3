// cachefsctl attest: what evidence this machine produces and whether Trustee accepts it, without
// a daemon (keyagent/diagnose.h). Exit 0 all good, 12 attestation or key denied, 1 otherwise.
// The key itself is never printed.

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "common/env_file.h"
#include "keyagent/diagnose.h"
#include "tools/cachefsctl/command.h"

namespace cachefs::ctl {
namespace {

struct AttestOptions {
  keyagent::KeySourceOptions key;
  std::string env_file;
  bool insecure_permissions = false;
};

int Run(AttestOptions& options) {
  if (!options.env_file.empty()) {
    auto env = ReadEnvFile(options.env_file, options.insecure_permissions);
    if (!env) {
      std::fprintf(stderr, "cachefsctl: %s\n", env.error().message().c_str());
      return kExitFailure;
    }
    auto take = [&](const char* name, std::string& field) {
      auto it = env->find(name);
      if (field.empty() && it != env->end()) {
        field = it->second;
      }
    };
    take("TRUSTEE_URL", options.key.trustee_url);
    take("MODEL_KEY_ID", options.key.key_id);
    take("TRUSTEE_POLICY", options.key.trustee_policy);
  }
  return keyagent::RunAttestDiagnostic(options.key, std::cout);
}

}  // namespace

void RegisterAttestCommand(CLI::App& app, const GlobalOptions&, int* exit_code) {
  auto options = std::make_shared<AttestOptions>();
  CLI::App* command =
      app.add_subcommand("attest",
                         "Check TEE evidence and, with --trustee-url, whether Trustee accepts it "
                         "(no daemon needed)");
  command->add_option("--env-file", options->env_file,
                      "CAI env-file: TRUSTEE_URL, MODEL_KEY_ID, TRUSTEE_POLICY");
  command->add_flag("--insecure-permissions", options->insecure_permissions,
                    "Accept an env-file readable by group or others");
  command->add_option("--trustee-url", options->key.trustee_url, "Trustee (KBS) base URL");
  command->add_option("--key-id", options->key.key_id,
                      "KBS resource to try: kbs:///repo/type/tag (only its size is shown)");
  command->add_option("--trustee-policy", options->key.trustee_policy, "Trustee policy");
  command->add_option("--attester", options->key.attester, "auto, tdx, tdx+nvidia or sample")
      ->capture_default_str();
  command->add_option("--trustee-ca", options->key.trustee_ca, "Extra CA bundle for Trustee");
  command->add_flag("--insecure-allow-non-tee", options->key.allow_non_tee,
                    "Permit the sample attester (development only)");
  command->callback([exit_code, options] { *exit_code = Run(*options); });
}

}  // namespace cachefs::ctl
