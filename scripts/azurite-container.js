// Creates a blob container in Azurite (object_store cannot create containers).
// Usage: node azurite-container.js PORT NAME
const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");
// Azurite's documented, public development account and key.
const account = "devstoreaccount1";
const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const [port, name] = process.argv.slice(2);
const svc = new BlobServiceClient(`http://127.0.0.1:${port}/${account}`, new StorageSharedKeyCredential(account, key));
svc.getContainerClient(name).createIfNotExists().then(
  () => process.exit(0),
  (e) => { console.error(`creating container ${name}: ${e.message}`); process.exit(1); },
);
