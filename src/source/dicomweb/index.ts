/** The DICOMweb source stage: finding, fetching and linking back to series in a PACS. */
export { DicomWebClient, type DicomWebClientOptions, type SeriesFilter, type SeriesListing, type InstanceListing } from './client.js';
export { resolveCredentials, CREDENTIAL_ENV, type DicomWebCredentials } from './credentials.js';
export { DicomWebError, isFatalDicomWebError, type DicomWebErrorCode } from './errors.js';
export { instanceHeader, seriesSkipReason, type InstanceHeader } from './instance-headers.js';
export { PacsState, type KeyValueState, type PacsSettings, type PacsVolumeRef, type InstanceRef, type SeriesSyncEntry } from './pacs-state.js';
export { pseudonymizerFromFile, pseudonymizerFromSecret, readPseudonymSecret, type UidPseudonymizer } from './pseudonym.js';
export { isDicomWebUrl, parseDicomWebUrl, type DicomWebAddress, type DicomWebEndpoint } from './url.js';
export { checkViewerTemplate, nearestInstance, viewerLink, OHIF_TEMPLATE_EXAMPLE, ORTHANC_STONE_TEMPLATE_EXAMPLE, type ViewerTarget } from './viewer-link.js';
export { ViewerLinker, type ViewerLinkInfo, type ViewerLinkerOptions } from './links.js';
