// Prints a container SAS URL for Azurite (rclone reaches the emulator only through one).
// Usage: node azurite-sas.js PORT CONTAINER
const {
  StorageSharedKeyCredential, generateBlobSASQueryParameters, ContainerSASPermissions,
} = require("@azure/storage-blob");
// Azurite's documented, public development account and key.
const account = "devstoreaccount1";
const key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const [port, container] = process.argv.slice(2);
const sas = generateBlobSASQueryParameters({
  containerName: container,
  permissions: ContainerSASPermissions.parse("racwdl"),
  expiresOn: new Date(Date.now() + 24 * 3600 * 1000),
  version: "2021-08-06",
}, new StorageSharedKeyCredential(account, key)).toString();
console.log(`http://127.0.0.1:${port}/${account}/${container}?${sas}`);
