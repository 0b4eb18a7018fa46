<?php
// PHP's own SoapClient (Debian php-soap), as a pharmacy's PHP software would use it: loads the
// served WSDL over mTLS, calls every operation in turn on the demo beneficiary B-MARTIN, and reads
// a Fault's vd:code_reponse from a SoapFault. Prints one "OPERATION CODE" line per call.
//
// usage: php php_soapclient.php WSDL_URL SERVER_CA CLIENT_CERT CLIENT_KEY PS_ID FINESS
[$_, $wsdl, $ca, $cert, $key, $ps, $finess] = $argv;

function uuid4(): string {
    $b = random_bytes(16);
    $b[6] = chr((ord($b[6]) & 0x0f) | 0x40);
    $b[8] = chr((ord($b[8]) & 0x3f) | 0x80);
    return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($b), 4));
}

$context = stream_context_create(['ssl' => [
    'cafile' => $ca,
    'local_cert' => $cert,
    'local_pk' => $key,
    'verify_peer' => true,
    'verify_peer_name' => true,
]]);
$client = new SoapClient($wsdl, [
    'soap_version' => SOAP_1_2,
    'stream_context' => $context,
    'exceptions' => true,
    'cache_wsdl' => WSDL_CACHE_NONE,
    'trace' => true,
]);
$entete = fn() => ['id_logiciel' => 'PHP-SOAPCLIENT', 'version_logiciel' => PHP_VERSION, 'id_requete' => uuid4()];
$who = ['identifiant_ps' => $ps, 'numero_structure' => $finess];

$r = $client->ServicesOuverts(['entete' => $entete()]);
echo "ServicesOuverts {$r->code_reponse->code}\n";

$r = $client->DemandeDroits([
    'entete' => $entete(), 'ps' => $who,
    'beneficiaire' => ['nir' => '1850578006084', 'cle_nir' => '91', 'date_naissance' => '19850512', 'rang_gemellaire' => 1],
    'amc' => ['numero_amc' => '12345678'],
    'date_reference' => '2026-06-01',
    'domaines' => ['domaine' => ['PHAR']],
]);
echo "DemandeDroits {$r->code_reponse->code}\n";
$dossier = $r->dossier->numero_dossier;

$prescription = [
    'id_prescription' => 1, 'prescripteur' => '751234567', 'date_facturation' => '2026-06-01',
    'ligne' => [[
        'id_ligne' => 1, 'code_prestation' => 'PH7', 'date_execution' => '2026-06-01',
        'quantite' => 2, 'prix_unitaire' => '10.00', 'montant_facture' => '20.00',
        'base_remboursement' => '20.00', 'taux_ro' => 65, 'montant_ro' => '13.00',
    ]],
];
foreach (['DEVIS', 'PEC'] as $mode) {
    $r = $client->DldTar(['entete' => $entete(), 'ps' => $who, 'numero_dossier' => $dossier, 'mode' => $mode, 'prescription' => $prescription]);
    echo "DldTar-$mode {$r->code_reponse->code} {$r->resultat->total_amc}\n";
}
$accreditation = $r->resultat->numero_accreditation;
$r = $client->ConsultationAccreditation(['entete' => $entete(), 'ps' => $who, 'numero_accreditation' => $accreditation]);
echo "ConsultationAccreditation {$r->code_reponse->code} {$r->statut}\n";
$r = $client->AnnulationTar(['entete' => $entete(), 'ps' => $who, 'numero_dossier' => $dossier, 'numero_accreditation' => $accreditation, 'id_prescription' => 1]);
echo "AnnulationTar {$r->code_reponse->code}\n";

// Another professional than the card's: an access Fault, raised as a SoapFault with its detail.
try {
    $client->DldTar(['entete' => $entete(), 'ps' => ['identifiant_ps' => '810001234573', 'numero_structure' => $finess], 'numero_dossier' => $dossier, 'mode' => 'DEVIS', 'prescription' => $prescription]);
    echo "Fault none\n";
} catch (SoapFault $f) {
    $code = $f->detail->code_reponse->code ?? 'no-detail';
    echo "Fault {$code} {$f->faultcode}\n";
}
