// Sign-in from Kotlin: a Kotlin `SecretStore` (what the Keystore-backed store is in an app) and
// the device-code flow against the real provisioning API + sandbox issuer (in process, HTTPS).

import java.nio.file.Files
import java.util.concurrent.ConcurrentHashMap
import uniffi.fieldlink_mobile.DeviceCodePrompt
import uniffi.fieldlink_mobile.FieldlinkClient
import uniffi.fieldlink_mobile.SecretStore
import uniffi.fieldlink_mobile.SignInListener
import uniffi.fieldlink_mobile.startIdentitySandbox

class MapSecretStore : SecretStore {
    val entries = ConcurrentHashMap<Pair<String, String>, ByteArray>()
    override fun get(service: String, account: String): ByteArray? = entries[service to account]
    override fun set(service: String, account: String, value: ByteArray) {
        entries[service to account] = value
    }
    override fun delete(service: String, account: String): Boolean = entries.remove(service to account) != null
    override fun describe() = "kotlin map"
}

suspend fun signInWithTheDeviceCodeFlow() {
    val identity = startIdentitySandbox()
    try {
        val store = MapSecretStore()
        val dataDir = Files.createTempDirectory("fieldlink-kotlin").toString()
        val client = FieldlinkClient(identity.profile("acme"), dataDir, store)
        check(client.session() == null) { "signed in before signing in" }
        val prompts = mutableListOf<DeviceCodePrompt>()
        val signedIn = client.signInWithDeviceCode(object : SignInListener {
            override fun onDeviceCode(prompt: DeviceCodePrompt) {
                prompts.add(prompt)
            }
        })
        check(prompts.size == 1 && prompts[0].userCode.isNotEmpty()) { prompts.toString() }
        check(signedIn.tenant == "acme" && signedIn.roles == listOf("installer")) { signedIn.toString() }
        check(store.entries.keys == setOf("fieldlink" to "tokens:acme")) { store.entries.keys.toString() }
        check(client.session()?.subject == signedIn.subject) { "session lost" }
        check(client.signOut().wasSignedIn) { "was not signed in" }
        check(store.entries.isEmpty()) { "tokens left behind" }
    } finally {
        identity.shutdown()
    }
}
